#include "quant/layer_pattern.hpp"

#include <regex>

#include "core/error.hpp"

namespace uq {
namespace {

constexpr std::string_view kRegexPrefix = "re:";

std::vector<std::string_view> split_components(std::string_view path) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot - start));
    if (dot == std::string_view::npos) return parts;
    start = dot + 1;
  }
}

bool regex_selects(std::string_view expression, std::string_view module_path) {
  try {
    const std::regex compiled{std::string(expression)};
    return std::regex_search(module_path.begin(), module_path.end(), compiled);
  } catch (const std::regex_error& error) {
    fail("layer pattern 're:", expression, "' is not a valid regular expression: ", error.what());
  }
}

}  // namespace

bool pattern_matches(std::string_view pattern, std::string_view module_path) {
  if (pattern.starts_with(kRegexPrefix)) {
    return regex_selects(pattern.substr(kRegexPrefix.size()), module_path);
  }
  if (pattern.empty()) return false;
  const auto path_parts = split_components(module_path);
  const auto pattern_parts = split_components(pattern);
  if (pattern_parts.size() == 1) {
    // One component: a substring of any component of the path.
    for (const auto part : path_parts) {
      if (part.find(pattern) != std::string_view::npos) return true;
    }
    return false;
  }
  // Several components: a dot-bounded run anywhere (covers whole path and prefix).
  if (pattern_parts.size() > path_parts.size()) return false;
  for (std::size_t start = 0; start + pattern_parts.size() <= path_parts.size(); ++start) {
    bool all_equal = true;
    for (std::size_t i = 0; i < pattern_parts.size() && all_equal; ++i) {
      all_equal = path_parts[start + i] == pattern_parts[i];
    }
    if (all_equal) return true;
  }
  return false;
}

std::optional<std::string> best_matching_pattern(const std::vector<std::string>& patterns,
                                                 std::string_view module_path) {
  std::optional<std::string> best;
  for (const auto& pattern : patterns) {
    if (pattern_matches(pattern, module_path) && (!best || pattern.size() > best->size())) {
      best = pattern;
    }
  }
  return best;
}

int bits_for_module(std::string_view module_path, int default_bits,
                    const std::map<std::string, int>& layer_bits,
                    const std::vector<std::string>& skip_patterns) {
  for (const auto& pattern : skip_patterns) {
    if (pattern_matches(pattern, module_path)) return 0;
  }
  std::vector<std::string> keys;
  for (const auto& [key, bits] : layer_bits) keys.push_back(key);
  const auto best = best_matching_pattern(keys, module_path);
  const int bits = best ? layer_bits.at(*best) : default_bits;
  return bits == 16 ? 0 : bits;
}

}  // namespace uq
