#pragma once
// A Hugging Face tokenizer read from tokenizer.json: added tokens, normalizer,
// pre-tokenizer, BPE model and decoder, with the semantics of the `tokenizers`
// library. Encoding never adds BOS/EOS (the post_processor is parsed and ignored).
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "io/tokenizer/added_tokens.hpp"

namespace uq {

class Bpe;
class Decoder;
class Normalizer;
class PreTokenizer;

class Tokenizer {
 public:
  // Fails (uq::Error naming the file) when the file is missing, not JSON, or
  // uses an unsupported component.
  static Tokenizer from_file(const std::filesystem::path& tokenizer_json);
  // The same from the JSON text; `origin` names it in error messages.
  static Tokenizer from_json(std::string_view json_text, const std::string& origin = "<json>");

  // Token ids of `text` (must be valid UTF-8). Thread-safe.
  std::vector<std::int32_t> encode(std::string_view text) const;
  // Text of `ids`; ids that no token has are skipped, as HF does.
  std::string decode(std::span<const std::int32_t> ids, bool skip_special_tokens = false) const;

  std::int64_t vocab_size() const;  // max id + 1 over vocab and added tokens
  std::optional<std::int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(std::int32_t id) const;  // fails for an unknown id

  // Raw pieces for serialisers (e.g. GGUF export).
  std::string model_type() const { return "BPE"; }
  std::vector<std::string> tokens() const;  // by id, vocab_size() long, "" for unused ids
  const std::vector<std::pair<std::string, std::string>>& merges() const;  // in rank order
  const std::vector<AddedToken>& added_tokens() const { return added_tokens_; }
  bool is_added(std::int32_t id) const;
  bool is_special(std::int32_t id) const;
  std::optional<std::string> unk_token() const;
  bool byte_fallback() const;

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

 private:
  Tokenizer();
  const AddedToken* find_added(std::int32_t id) const;

  std::unique_ptr<const Bpe> model_;
  std::unique_ptr<const Normalizer> normalizer_;
  std::unique_ptr<const PreTokenizer> pre_tokenizer_;
  std::unique_ptr<const Decoder> decoder_;
  std::vector<AddedToken> added_tokens_;
  std::vector<std::string> added_decode_texts_;  // per added token: its text when decoding
  std::unordered_map<std::int32_t, std::size_t> added_index_;    // id -> index in added_tokens_
  std::unique_ptr<const AddedTokenMatcher> raw_matcher_;         // normalized == false
  std::unique_ptr<const AddedTokenMatcher> normalized_matcher_;  // normalized == true
};

}  // namespace uq
