#pragma once
// A compiled PCRE2 regular expression in UTF + UCP mode (so \p{L}, \s, \w are
// Unicode-aware, like the Oniguruma regexes of HF tokenizers), JIT-compiled.
// Immutable after construction; safe to share between threads.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/tokenizer/byte_range.hpp"

namespace uq {

class Regex {
 public:
  // `owner` names where the pattern comes from, for error messages.
  Regex(std::string_view pattern, std::string_view owner);

  // All non-overlapping matches in `text` (valid UTF-8), left to right. After an
  // empty match the search resumes one character later.
  std::vector<ByteRange> find_all(std::string_view text) const;

  // `text` with every match replaced by `replacement` (taken literally).
  std::string replace_all(std::string_view text, std::string_view replacement) const;

 private:
  struct Compiled;
  std::shared_ptr<const Compiled> compiled_;
};

// Regex source that matches `literal` exactly.
std::string escape_regex(std::string_view literal);

}  // namespace uq
