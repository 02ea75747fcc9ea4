#include "io/tokenizer/tokenizer.hpp"

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/tokenizer/bpe.hpp"
#include "io/tokenizer/decoder.hpp"
#include "io/tokenizer/json_spec.hpp"
#include "io/tokenizer/normalizer.hpp"
#include "io/tokenizer/pre_tokenizer.hpp"
#include "io/tokenizer/utf8.hpp"

namespace uq {
namespace {

std::vector<AddedToken> parse_added_tokens(const nlohmann::json& spec) {
  std::vector<AddedToken> tokens;
  if (spec.is_null()) return tokens;
  if (!spec.is_array()) fail("added_tokens must be a list");
  for (const auto& entry : spec) {
    AddedToken token;
    const auto id = required_field<std::int64_t>(entry, "id", "added_tokens entry");
    if (id < 0 || id > std::numeric_limits<std::int32_t>::max()) {
      fail("added_tokens: invalid id ", id);
    }
    token.id = static_cast<std::int32_t>(id);
    token.content = required_field<std::string>(entry, "content", "added_tokens entry");
    token.special = field_or(entry, "special", false);
    token.lstrip = field_or(entry, "lstrip", false);
    token.rstrip = field_or(entry, "rstrip", false);
    token.single_word = field_or(entry, "single_word", false);
    token.normalized = field_or(entry, "normalized", !token.special);
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// A piece of the text on its way through the pipeline.
struct Piece {
  std::string text;
  std::optional<std::int32_t> added_id;
  std::size_t start_bytes = 0;  // see PreToken::start_bytes
};

void append_added_token_splits(const AddedTokenMatcher& matcher, std::string_view text,
                               std::size_t start_bytes, std::vector<Piece>& out) {
  for (const AddedTokenSplit& split : matcher.split(text)) {
    const auto [begin, end] = split.range;
    if (begin == end) continue;
    out.push_back({std::string(text.substr(begin, end - begin)), split.id,
                   sub_piece_start_bytes(start_bytes, begin, end)});
  }
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_file(const std::filesystem::path& tokenizer_json) {
  std::ifstream file(tokenizer_json, std::ios::binary);
  if (!file) fail("cannot open tokenizer file ", tokenizer_json.string());
  std::ostringstream contents;
  contents << file.rdbuf();
  return from_json(contents.str(), tokenizer_json.string());
}

Tokenizer Tokenizer::from_json(std::string_view json_text, const std::string& origin) {
  try {
    const auto spec = nlohmann::json::parse(json_text);
    if (!spec.is_object()) fail("expected a JSON object");
    Tokenizer tokenizer;
    const auto& model = required_field<nlohmann::json>(spec, "model", "tokenizer");
    // Files without "type" predate it and are BPE when they have merges.
    const std::string model_type = model.contains("type")     ? component_type(model, "model")
                                   : model.contains("merges") ? "BPE"
                                                              : "<none>";
    if (model_type != "BPE") {
      fail("unsupported model type '", model_type, "' (supported: BPE)");
    }
    tokenizer.model_ = std::make_unique<const Bpe>(Bpe::from_json(model));
    tokenizer.normalizer_ = make_normalizer(field_or(spec, "normalizer", nlohmann::json()));
    tokenizer.pre_tokenizer_ =
        make_pre_tokenizer(field_or(spec, "pre_tokenizer", nlohmann::json()));
    tokenizer.decoder_ = make_decoder(field_or(spec, "decoder", nlohmann::json()));
    tokenizer.added_tokens_ = parse_added_tokens(field_or(spec, "added_tokens", nlohmann::json()));
    const std::int64_t id_limit = tokenizer.model_->vocab_size() +
                                  static_cast<std::int64_t>(tokenizer.added_tokens_.size()) +
                                  kMaxUnusedTokenIds;
    for (const AddedToken& token : tokenizer.added_tokens_) {
      if (token.id >= id_limit) {
        fail("added_tokens: id ", token.id, " of '", token.content, "' leaves more than ",
             kMaxUnusedTokenIds, " ids unused after the ", tokenizer.model_->vocab_size(),
             "-id vocabulary");
      }
    }

    std::vector<AddedToken> raw;
    std::vector<std::string> raw_patterns;
    std::vector<AddedToken> normalized;
    std::vector<std::string> normalized_patterns;
    for (std::size_t index = 0; index < tokenizer.added_tokens_.size(); ++index) {
      const AddedToken& token = tokenizer.added_tokens_[index];
      tokenizer.added_index_.emplace(token.id, index);
      if (token.normalized) {
        // Matched against normalized text, so the pattern is normalized too;
        // HF also decodes the token to this normalized form.
        std::string pattern = token.content;
        if (tokenizer.normalizer_) tokenizer.normalizer_->normalize(pattern);
        tokenizer.added_decode_texts_.push_back(pattern);
        normalized.push_back(token);
        normalized_patterns.push_back(std::move(pattern));
      } else {
        tokenizer.added_decode_texts_.push_back(token.content);
        raw.push_back(token);
        raw_patterns.push_back(token.content);
      }
    }
    tokenizer.raw_matcher_ =
        std::make_unique<const AddedTokenMatcher>(std::move(raw), std::move(raw_patterns));
    tokenizer.normalized_matcher_ = std::make_unique<const AddedTokenMatcher>(
        std::move(normalized), std::move(normalized_patterns));
    return tokenizer;
  } catch (const nlohmann::json::exception& e) {
    fail(origin, ": invalid tokenizer JSON: ", e.what());
  } catch (const Error& e) {
    fail(origin, ": ", e.what());
  }
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view text) const {
  if (const auto bad = utf8::find_invalid(text)) {
    fail("input text is not valid UTF-8 at byte ", *bad);
  }
  // 1. Added tokens in the raw text; 2. normalize the rest and find the added
  //    tokens that match normalized text; 3. pre-tokenize and run BPE on the rest.
  std::vector<Piece> raw_pieces;
  append_added_token_splits(
      *raw_matcher_, text,
      text.empty() ? 0 : utf8::sequence_length(static_cast<unsigned char>(text[0])), raw_pieces);
  std::vector<Piece> pieces;
  for (Piece& piece : raw_pieces) {
    if (piece.added_id) {
      pieces.push_back(std::move(piece));
      continue;
    }
    // Normalizers track the start in the piece's own terms (its first character).
    const bool at_input_start = piece.start_bytes > 0;
    std::size_t start_bytes = utf8::sequence_length(static_cast<unsigned char>(piece.text[0]));
    if (normalizer_) normalizer_->normalize(piece.text, start_bytes);
    append_added_token_splits(*normalized_matcher_, piece.text, at_input_start ? start_bytes : 0,
                              pieces);
  }

  std::vector<std::int32_t> ids;
  ids.reserve(text.size() / 3);
  std::vector<PreToken> words;
  for (Piece& piece : pieces) {
    if (piece.added_id) {
      ids.push_back(*piece.added_id);
      continue;
    }
    words.clear();
    words.push_back({std::move(piece.text), piece.start_bytes});
    if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(words);
    for (const PreToken& word : words) model_->tokenize(word.text, ids);
  }
  return ids;
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const std::int32_t id : ids) {
    const std::string* token = nullptr;
    if (const AddedToken* added = find_added(id)) {
      token = &added_decode_texts_[static_cast<std::size_t>(added - added_tokens_.data())];
    } else {
      token = model_->id_to_token(id);
    }
    if (token == nullptr) continue;
    if (skip_special_tokens &&
        std::any_of(added_tokens_.begin(), added_tokens_.end(),
                    [&](const AddedToken& t) { return t.special && t.content == *token; })) {
      continue;
    }
    tokens.push_back(*token);
  }
  std::string text;
  if (decoder_) {
    for (const std::string& piece : decoder_->decode_chain(std::move(tokens))) text.append(piece);
  } else {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) text.push_back(' ');
      text.append(tokens[i]);
    }
  }
  return text;
}

std::int64_t Tokenizer::vocab_size() const {
  std::int64_t size = model_->vocab_size();
  for (const AddedToken& token : added_tokens_) size = std::max<std::int64_t>(size, token.id + 1);
  return size;
}

std::optional<std::int32_t> Tokenizer::token_to_id(std::string_view token) const {
  for (const AddedToken& added : added_tokens_) {
    if (added.content == token) return added.id;
  }
  return model_->token_to_id(token);
}

std::string Tokenizer::id_to_token(std::int32_t id) const {
  if (const AddedToken* added = find_added(id)) return added->content;
  if (const std::string* token = model_->id_to_token(id)) return *token;
  fail("token id ", id, " is not in the tokenizer's vocabulary (size ", vocab_size(), ")");
}

std::vector<std::string> Tokenizer::tokens() const {
  std::vector<std::string> by_id(static_cast<std::size_t>(vocab_size()));
  std::copy(model_->tokens().begin(), model_->tokens().end(), by_id.begin());
  for (const AddedToken& token : added_tokens_)
    by_id[static_cast<std::size_t>(token.id)] = token.content;
  return by_id;
}

const std::vector<std::pair<std::string, std::string>>& Tokenizer::merges() const {
  return model_->merges();
}

bool Tokenizer::is_added(std::int32_t id) const {
  return find_added(id) != nullptr;
}

bool Tokenizer::is_special(std::int32_t id) const {
  const AddedToken* added = find_added(id);
  return added != nullptr && added->special;
}

std::optional<std::string> Tokenizer::unk_token() const {
  return model_->unk_token();
}

bool Tokenizer::byte_fallback() const {
  return model_->byte_fallback();
}

const AddedToken* Tokenizer::find_added(std::int32_t id) const {
  const auto it = added_index_.find(id);
  return it == added_index_.end() ? nullptr : &added_tokens_[it->second];
}

}  // namespace uq
