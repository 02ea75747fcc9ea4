#pragma once
#include <cstddef>

namespace uq {

// A half-open range [begin, end) of byte offsets into a string.
struct ByteRange {
  std::size_t begin = 0;
  std::size_t end = 0;
};

}  // namespace uq
