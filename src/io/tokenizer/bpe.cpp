#include "io/tokenizer/bpe.hpp"

#include <cstdio>
#include <limits>
#include <mutex>
#include <queue>
#include <shared_mutex>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/tokenizer/json_spec.hpp"
#include "io/tokenizer/utf8.hpp"

namespace uq {

// Word -> ids memo: text repeats words a lot, and merging is the costly part.
struct Bpe::WordCache {
  static constexpr std::size_t kMaxEntries = 1 << 17;
  static constexpr std::size_t kMaxWordBytes = 256;
  mutable std::shared_mutex mutex;
  std::unordered_map<std::string, std::vector<std::int32_t>, StringHash, std::equal_to<>> words;
};

namespace {

std::uint64_t pair_key(std::int32_t left, std::int32_t right) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
         static_cast<std::uint32_t>(right);
}

std::pair<std::string, std::string> parse_merge(const nlohmann::json& merge, std::size_t rank) {
  if (merge.is_string()) {  // legacy "left right"
    const auto text = merge.get<std::string>();
    const std::size_t space = text.find(' ');
    if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
      fail("model.merges[", rank, "] '", text, "' is not two tokens separated by one space");
    }
    return {text.substr(0, space), text.substr(space + 1)};
  }
  if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
    return {merge[0].get<std::string>(), merge[1].get<std::string>()};
  }
  fail("model.merges[", rank, "] must be \"a b\" or [\"a\", \"b\"], got ", merge.dump());
}

// A symbol of the word being merged: a doubly linked list over a vector.
struct Symbol {
  std::int32_t id;
  std::int32_t prev;
  std::int32_t next;
  bool removed;
};

struct MergeCandidate {
  std::uint32_t rank;
  std::int32_t position;
  std::int32_t new_id;
  // Lowest rank first, then leftmost, as HF does.
  bool operator>(const MergeCandidate& other) const {
    return rank != other.rank ? rank > other.rank : position > other.position;
  }
};

}  // namespace

Bpe::Bpe() : cache_(std::make_unique<WordCache>()) {}
Bpe::Bpe(Bpe&&) noexcept = default;
Bpe& Bpe::operator=(Bpe&&) noexcept = default;
Bpe::~Bpe() = default;

Bpe Bpe::from_json(const nlohmann::json& spec) {
  Bpe bpe;
  if (field_or<double>(spec, "dropout", 0.0) != 0.0) {
    fail("model.dropout is not supported (encoding must be deterministic)");
  }
  const auto& vocab = required_field<nlohmann::json>(spec, "vocab", "model");
  if (!vocab.is_object()) fail("model.vocab must be an object of token -> id");
  std::int64_t max_id = -1;
  for (const auto& [token, id_json] : vocab.items()) {
    const auto id = json_as<std::int64_t>(id_json, "model.vocab id");
    if (id < 0 || id > std::numeric_limits<std::int32_t>::max()) {
      fail("model.vocab: token '", token, "' has invalid id ", id);
    }
    bpe.vocab_.emplace(token, static_cast<std::int32_t>(id));
    max_id = std::max(max_id, id);
  }
  const auto token_count = static_cast<std::int64_t>(bpe.vocab_.size());
  if (max_id + 1 - token_count > kMaxUnusedTokenIds) {
    fail("model.vocab: largest id ", max_id, " leaves more than ", kMaxUnusedTokenIds, " of the ",
         max_id + 1, " ids unused (", token_count, " tokens)");
  }
  bpe.tokens_.resize(static_cast<std::size_t>(max_id + 1));
  bpe.has_id_.resize(bpe.tokens_.size());
  for (const auto& [token, id] : bpe.vocab_) {
    bpe.tokens_[static_cast<std::size_t>(id)] = token;
    bpe.has_id_[static_cast<std::size_t>(id)] = true;
  }

  bpe.unk_token_ = optional_field<std::string>(spec, "unk_token");
  bpe.continuing_subword_prefix_ = optional_field<std::string>(spec, "continuing_subword_prefix");
  bpe.end_of_word_suffix_ = optional_field<std::string>(spec, "end_of_word_suffix");
  bpe.fuse_unk_ = field_or(spec, "fuse_unk", false);
  bpe.byte_fallback_ = field_or(spec, "byte_fallback", false);
  bpe.ignore_merges_ = field_or(spec, "ignore_merges", false);

  const auto& merges = required_field<nlohmann::json>(spec, "merges", "model");
  if (!merges.is_array()) fail("model.merges must be a list");
  const std::size_t prefix_length =
      bpe.continuing_subword_prefix_ ? bpe.continuing_subword_prefix_->size() : 0;
  bpe.merges_.reserve(merges.size());
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    auto [left, right] = parse_merge(merges[rank], rank);
    const auto left_id = bpe.token_to_id(left);
    const auto right_id = bpe.token_to_id(right);
    if (!left_id || !right_id) {
      fail("model.merges[", rank, "] '", left, " ", right, "': token '", left_id ? right : left,
           "' is not in model.vocab");
    }
    // The right part loses its continuing-subword prefix in the merged token.
    const std::string merged = left + (right.size() >= prefix_length && prefix_length > 0 &&
                                               right.starts_with(*bpe.continuing_subword_prefix_)
                                           ? right.substr(prefix_length)
                                           : right);
    const auto merged_id = bpe.token_to_id(merged);
    if (!merged_id) {
      fail("model.merges[", rank, "] '", left, " ", right, "': merged token '", merged,
           "' is not in model.vocab");
    }
    bpe.merge_targets_.insert_or_assign(pair_key(*left_id, *right_id),
                                        MergeTarget{static_cast<std::uint32_t>(rank), *merged_id});
    bpe.merges_.emplace_back(std::move(left), std::move(right));
  }

  bpe.byte_token_ids_.assign(256, -1);
  for (int byte = 0; byte < 256; ++byte) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", byte);
    if (const auto id = bpe.token_to_id(name)) bpe.byte_token_ids_[byte] = *id;
  }
  return bpe;
}

std::optional<std::int32_t> Bpe::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* Bpe::id_to_token(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size()) return nullptr;
  if (!has_id_[static_cast<std::size_t>(id)]) return nullptr;
  return &tokens_[static_cast<std::size_t>(id)];
}

std::optional<Bpe::MergeTarget> Bpe::find_merge(std::int32_t left, std::int32_t right) const {
  const auto it = merge_targets_.find(pair_key(left, right));
  if (it == merge_targets_.end()) return std::nullopt;
  return it->second;
}

std::int32_t Bpe::unk_id() const {
  const auto id = token_to_id(*unk_token_);
  if (!id) fail("model.unk_token '", *unk_token_, "' is not in model.vocab");
  return *id;
}

void Bpe::tokenize(std::string_view word, std::vector<std::int32_t>& ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const auto id = token_to_id(word)) {
      ids.push_back(*id);
      return;
    }
  }
  const bool cacheable = word.size() <= WordCache::kMaxWordBytes;
  if (cacheable) {
    std::shared_lock lock(cache_->mutex);
    const auto it = cache_->words.find(word);
    if (it != cache_->words.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<std::int32_t> word_ids = merge_word(word);
  ids.insert(ids.end(), word_ids.begin(), word_ids.end());
  if (cacheable) {
    std::unique_lock lock(cache_->mutex);
    if (cache_->words.size() < WordCache::kMaxEntries) {
      cache_->words.emplace(std::string(word), std::move(word_ids));
    }
  }
}

std::vector<std::int32_t> Bpe::merge_word(std::string_view word) const {
  // 1. One symbol per character (with prefix/suffix), else its byte tokens, else unk.
  std::vector<std::int32_t> initial;
  std::optional<std::int32_t> pending_unk;  // fused unknowns wait here
  std::string piece;
  for (std::size_t pos = 0; pos < word.size();) {
    const std::size_t begin = pos;
    utf8::next_code_point(word, pos);
    piece.clear();
    if (begin > 0 && continuing_subword_prefix_) piece.append(*continuing_subword_prefix_);
    piece.append(word.substr(begin, pos - begin));
    if (pos == word.size() && end_of_word_suffix_) piece.append(*end_of_word_suffix_);

    if (const auto id = token_to_id(piece)) {
      if (pending_unk) initial.push_back(*std::exchange(pending_unk, std::nullopt));
      initial.push_back(*id);
      continue;
    }
    if (byte_fallback_) {
      bool all_bytes_known = true;
      for (const char byte : piece) {
        all_bytes_known = all_bytes_known && byte_token_ids_[static_cast<unsigned char>(byte)] >= 0;
      }
      if (all_bytes_known) {
        if (pending_unk) initial.push_back(*std::exchange(pending_unk, std::nullopt));
        for (const char byte : piece) {
          initial.push_back(byte_token_ids_[static_cast<unsigned char>(byte)]);
        }
        continue;
      }
    }
    // Without an unk token HF drops the character; so do we.
    if (unk_token_) {
      if (pending_unk && !fuse_unk_) initial.push_back(*pending_unk);
      pending_unk = unk_id();
    }
  }
  if (pending_unk) initial.push_back(*pending_unk);

  // 2. Apply merges, lowest rank first, through a queue of candidate pairs whose
  //    entries are re-validated when popped (the list may have changed since).
  const auto count = static_cast<std::int32_t>(initial.size());
  std::vector<Symbol> symbols(initial.size());
  for (std::int32_t i = 0; i < count; ++i) {
    symbols[i] = {initial[i], i - 1, i + 1 < count ? i + 1 : -1, false};
  }
  std::priority_queue<MergeCandidate, std::vector<MergeCandidate>, std::greater<>> queue;
  for (std::int32_t i = 0; i + 1 < count; ++i) {
    if (const auto merge = find_merge(symbols[i].id, symbols[i + 1].id)) {
      queue.push({merge->rank, i, merge->id});
    }
  }
  while (!queue.empty()) {
    const MergeCandidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.position];
    if (left.removed || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    const auto current = find_merge(left.id, right.id);
    if (!current || current->id != top.new_id) continue;  // stale entry

    left.id = top.new_id;
    right.removed = true;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.position;
    if (left.prev >= 0) {
      if (const auto merge = find_merge(symbols[left.prev].id, left.id)) {
        queue.push({merge->rank, left.prev, merge->id});
      }
    }
    if (left.next >= 0) {
      if (const auto merge = find_merge(left.id, symbols[left.next].id)) {
        queue.push({merge->rank, top.position, merge->id});
      }
    }
  }

  std::vector<std::int32_t> ids;
  for (std::int32_t i = count > 0 ? 0 : -1; i >= 0; i = symbols[i].next)
    ids.push_back(symbols[i].id);
  return ids;
}

}  // namespace uq
