#include "io/byte_size.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/error.hpp"

namespace uq {

std::uint64_t parse_byte_size(const std::string& text, const std::string& what) {
  std::size_t number_end = 0;
  while (number_end < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[number_end])) || text[number_end] == '.')) {
    ++number_end;
  }
  std::string unit = text.substr(number_end);
  std::transform(unit.begin(), unit.end(), unit.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1.0},    {"b", 1.0},      {"kb", 1e3},     {"mb", 1e6},     {"gb", 1e9},
      {"tb", 1e12}, {"kib", 0x1p10}, {"mib", 0x1p20}, {"gib", 0x1p30}, {"tib", 0x1p40}};
  const auto* found = std::find_if(std::begin(kUnits), std::end(kUnits),
                                   [&unit](const auto& entry) { return unit == entry.first; });
  double number = 0.0;
  bool parsed = number_end > 0 && found != std::end(kUnits);
  if (parsed) {
    try {
      std::size_t used = 0;
      number = std::stod(text.substr(0, number_end), &used);
      parsed = used == number_end;
    } catch (const std::exception&) {
      parsed = false;
    }
  }
  const double bytes = number * (parsed ? found->second : 0.0);
  if (!parsed || !(bytes >= 1.0) || bytes > 0x1p62) {
    fail(what, " '", text, "' is not a size (e.g. 5GB, 500MB, 2GiB or a number of bytes)");
  }
  return static_cast<std::uint64_t>(std::llround(bytes));
}

}  // namespace uq
