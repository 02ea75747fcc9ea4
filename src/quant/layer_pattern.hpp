#pragma once
// Layer patterns (DESIGN.md §4.3): which module paths a `layer_bits` key or a
// `skip` pattern selects, and which bits a module gets.
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace uq {

// True when `pattern` selects `module_path`: the whole path, a dot-bounded
// prefix, a dot-bounded run of components inside it, or a substring of one
// component. "re:<regex>" instead searches the path with an ECMAScript regex.
// Throws uq::Error for an invalid regular expression.
bool pattern_matches(std::string_view pattern, std::string_view module_path);

// Of the patterns that select `module_path`, the longest (the most specific);
// nullopt when none does.
std::optional<std::string> best_matching_pattern(const std::vector<std::string>& patterns,
                                                 std::string_view module_path);

// Bits for a module: the value of the longest matching `layer_bits` key, else
// `default_bits`; 0 when the module stays unquantized (bits 0 or 16, or a
// matching skip pattern).
int bits_for_module(std::string_view module_path, int default_bits,
                    const std::map<std::string, int>& layer_bits,
                    const std::vector<std::string>& skip_patterns);

}  // namespace uq
