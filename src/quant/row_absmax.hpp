#pragma once
// The per-output-channel formats (symmetric int8/int4, float8) all start a row
// the same way: convert it to float32 and take its absolute maximum, refusing
// a NaN or infinity by its position.
#include <cstdint>
#include <string_view>

#include "core/dtype.hpp"

namespace uq {

// Converts row `row` of the [*, in] matrix `data` (float dtype `dtype`) into
// `out` (in floats) and returns max |value|. Throws uq::Error naming `tensor`
// and the element's [row, column] for a non-finite value.
float load_row_absmax(const void* data, DType dtype, std::int64_t row, std::int64_t in, float* out,
                      std::string_view tensor);

}  // namespace uq
