#pragma once
// The `pattern` of Split / Replace in tokenizer.json: {"String": "..."} (a
// literal) or {"Regex": "..."}.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "io/tokenizer/byte_range.hpp"
#include "io/tokenizer/regex.hpp"

namespace uq {

class Pattern {
 public:
  // `owner` names the component in error messages ("pre_tokenizer Split").
  static Pattern from_json(const nlohmann::json& spec, std::string_view owner);

  std::vector<ByteRange> find_all(std::string_view text) const;
  std::string replace_all(std::string_view text, std::string_view replacement) const;

 private:
  explicit Pattern(std::optional<Regex> regex) : regex_(std::move(regex)) {}
  std::optional<Regex> regex_;  // nullopt for the empty literal, which matches nowhere
};

}  // namespace uq
