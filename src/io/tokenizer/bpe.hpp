#pragma once
// The BPE model of tokenizer.json: vocab, ranked merges, unk token, byte
// fallback, continuing-subword prefix / end-of-word suffix, ignore_merges.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace uq {

// Token ids index dense tables (id -> token), so a file may leave at most this
// many ids unused: a tiny file claiming id 2^31-1 must not cost 64 GB.
constexpr std::int64_t kMaxUnusedTokenIds = 65536;

class Bpe {
 public:
  // `spec` is the "model" object of tokenizer.json; fails on inconsistent data.
  static Bpe from_json(const nlohmann::json& spec);

  // Appends the ids of one pre-tokenized word (valid UTF-8). Thread-safe.
  void tokenize(std::string_view word, std::vector<std::int32_t>& ids) const;

  std::optional<std::int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(std::int32_t id) const;  // nullptr if absent
  std::int64_t vocab_size() const { return static_cast<std::int64_t>(tokens_.size()); }
  // Tokens by id ("" where the vocab has no such id).
  const std::vector<std::string>& tokens() const { return tokens_; }
  const std::vector<std::pair<std::string, std::string>>& merges() const { return merges_; }
  const std::optional<std::string>& unk_token() const { return unk_token_; }
  bool byte_fallback() const { return byte_fallback_; }

  Bpe(Bpe&&) noexcept;
  Bpe& operator=(Bpe&&) noexcept;
  ~Bpe();

 private:
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
      return std::hash<std::string_view>{}(text);
    }
  };
  struct MergeTarget {
    std::uint32_t rank;
    std::int32_t id;
  };
  struct WordCache;

  Bpe();
  std::vector<std::int32_t> merge_word(std::string_view word) const;
  std::optional<MergeTarget> find_merge(std::int32_t left, std::int32_t right) const;
  std::int32_t unk_id() const;

  std::unordered_map<std::string, std::int32_t, StringHash, std::equal_to<>> vocab_;
  std::vector<std::string> tokens_;
  std::vector<bool> has_id_;  // ids may have holes
  std::vector<std::pair<std::string, std::string>> merges_;
  std::unordered_map<std::uint64_t, MergeTarget> merge_targets_;  // (left << 32 | right)
  std::optional<std::string> unk_token_;
  std::optional<std::string> continuing_subword_prefix_;
  std::optional<std::string> end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::vector<std::int32_t> byte_token_ids_;  // id of "<0xAB>" per byte, -1 if absent
  std::unique_ptr<WordCache> cache_;
};

}  // namespace uq
