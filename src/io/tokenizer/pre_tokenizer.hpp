#pragma once
// tokenizer.json "pre_tokenizer": ByteLevel, Split, Digits, Whitespace,
// WhitespaceSplit, Metaspace and Sequence of those. A pre-tokenizer cuts each
// piece of text into smaller pieces (and may rewrite them); BPE then runs on
// every piece separately.
#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace uq {

struct PreToken {
  std::string text;
  // Length of the leading part that HF aligns with the start of the encoded
  // text (0 when the piece does not begin there).
  std::size_t start_bytes = 0;
};

// The start-aligned length of the sub-piece [begin, end) of a piece whose
// start-aligned length is `start_bytes`.
inline std::size_t sub_piece_start_bytes(std::size_t start_bytes, std::size_t begin,
                                         std::size_t end) {
  return begin < start_bytes ? std::min(start_bytes, end) - begin : 0;
}

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces every piece by its sub-pieces; never leaves an empty piece.
  virtual void pre_tokenize(std::vector<PreToken>& pieces) const = 0;
};

// nullptr for a null spec (each piece stays whole); fails on unsupported types.
std::unique_ptr<const PreTokenizer> make_pre_tokenizer(const nlohmann::json& spec);

// The GPT-2 pre-tokenization regex that ByteLevel(use_regex=true) applies.
inline constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace uq
