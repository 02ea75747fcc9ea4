#pragma once
// tokenizer.json "added_tokens": tokens matched in the text before anything
// else and never split. Matching is leftmost-longest, like HF's Aho-Corasick.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/tokenizer/byte_range.hpp"

namespace uq {

struct AddedToken {
  std::int32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false;       // swallow whitespace on the left
  bool rstrip = false;       // swallow whitespace on the right
  bool single_word = false;  // only match when not inside a word
  bool normalized = false;   // matched in the normalized text instead of the raw text
};

// A piece of text, which is either an added token (its id) or plain text.
struct AddedTokenSplit {
  ByteRange range;
  std::optional<std::int32_t> id;
};

// Finds a set of added tokens (e.g. all those with normalized == false).
class AddedTokenMatcher {
 public:
  // `patterns[i]` is the text to find for `tokens[i]` (its content, normalized or not).
  AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns);

  // Cuts `text` into added tokens and the plain text between them (which may
  // be empty pieces that callers drop). Covers the whole text in order.
  std::vector<AddedTokenSplit> split(std::string_view text) const;

  bool empty() const { return tokens_.empty(); }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, std::int32_t>> children;  // sorted by byte
    std::int32_t token = -1;                                       // index into tokens_
  };
  std::int32_t child(std::int32_t node, unsigned char byte) const;
  // Index of the longest token starting at `pos` and its end, if any.
  std::optional<std::pair<std::int32_t, std::size_t>> longest_at(std::string_view text,
                                                                 std::size_t pos) const;

  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_;                // a byte trie; nodes_[0] is the root
  std::array<bool, 256> is_first_byte_{};  // of some token: where matching is worth trying
};

}  // namespace uq
