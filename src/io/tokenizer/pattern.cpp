#include "io/tokenizer/pattern.hpp"

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace uq {

Pattern Pattern::from_json(const nlohmann::json& spec, std::string_view owner) {
  if (spec.is_object() && spec.size() == 1) {
    if (spec.contains("String") && spec["String"].is_string()) {
      const auto literal = spec["String"].get<std::string>();
      if (literal.empty()) return Pattern(std::nullopt);
      return Pattern(Regex(escape_regex(literal), owner));
    }
    if (spec.contains("Regex") && spec["Regex"].is_string()) {
      return Pattern(Regex(spec["Regex"].get<std::string>(), owner));
    }
  }
  fail(owner, ": pattern must be {\"String\": ...} or {\"Regex\": ...}, got ", spec.dump());
}

std::vector<ByteRange> Pattern::find_all(std::string_view text) const {
  if (!regex_) return {};
  return regex_->find_all(text);
}

std::string Pattern::replace_all(std::string_view text, std::string_view replacement) const {
  if (!regex_) return std::string(text);
  return regex_->replace_all(text, replacement);
}

}  // namespace uq
