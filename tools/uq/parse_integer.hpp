#pragma once
// A command-line value that must be a whole integer of type Int: std::stoll's reading (leading
// blanks and a sign allowed), nothing after it, and in Int's range; nullopt otherwise. The
// callers name the option in their own error message.
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>

namespace uq::cli {

template <class Int>
std::optional<Int> parse_integer(const std::string& text) {
  std::size_t used = 0;
  long long value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (used != text.size() || value < std::numeric_limits<Int>::min() ||
      value > std::numeric_limits<Int>::max()) {
    return std::nullopt;
  }
  return static_cast<Int>(value);
}

}  // namespace uq::cli
