#include "io/tokenizer/pre_tokenizer.hpp"

#include <optional>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/tokenizer/byte_level.hpp"
#include "io/tokenizer/char_class.hpp"
#include "io/tokenizer/json_spec.hpp"
#include "io/tokenizer/pattern.hpp"
#include "io/tokenizer/regex.hpp"
#include "io/tokenizer/split.hpp"
#include "io/tokenizer/utf8.hpp"

namespace uq {
namespace {

// Cuts every piece with `cut(text) -> pieces' byte ranges`.
template <class Cut>
void split_each(std::vector<PreToken>& pieces, Cut cut) {
  std::vector<PreToken> result;
  result.reserve(pieces.size());
  for (PreToken& piece : pieces) {
    for (const ByteRange& range : cut(std::string_view(piece.text))) {
      if (range.begin == range.end) continue;
      result.push_back({piece.text.substr(range.begin, range.end - range.begin),
                        sub_piece_start_bytes(piece.start_bytes, range.begin, range.end)});
    }
  }
  pieces = std::move(result);
}

class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_.emplace(kGpt2Pattern, "pre_tokenizer ByteLevel");
  }
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    if (add_prefix_space_) {
      for (PreToken& piece : pieces) {
        if (piece.text.front() == ' ') continue;
        piece.text.insert(0, 1, ' ');
        if (piece.start_bytes > 0) ++piece.start_bytes;
      }
    }
    if (regex_) {
      split_each(pieces, [&](std::string_view text) {
        return split_at_matches(text.size(), regex_->find_all(text), SplitBehavior::Isolated);
      });
    }
    for (PreToken& piece : pieces) {
      piece.start_bytes = byte_level::encode(piece.text.substr(0, piece.start_bytes)).size();
      piece.text = byte_level::encode(piece.text);
    }
  }

 private:
  bool add_prefix_space_;
  std::optional<Regex> regex_;
};

class Split final : public PreTokenizer {
 public:
  Split(Pattern pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    split_each(pieces, [&](std::string_view text) {
      return split_at_matches(text.size(), pattern_.find_all(text), behavior_, invert_);
    });
  }

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

class Digits final : public PreTokenizer {
 public:
  explicit Digits(bool individual_digits) : individual_digits_(individual_digits) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    const auto behavior = individual_digits_ ? SplitBehavior::Isolated : SplitBehavior::Contiguous;
    split_each(pieces, [&](std::string_view text) {
      return split_at_matches(text.size(), match_chars(text, char_class::is_numeric), behavior);
    });
  }

 private:
  bool individual_digits_;
};

// Runs of word characters and runs of other non-space characters; spaces dropped.
class Whitespace final : public PreTokenizer {
 public:
  Whitespace()
      : regex_(R"([\p{L}\p{M}\p{Nd}\p{Nl}\p{Pc}\x{200C}\x{200D}]+|)"
               R"([^\p{L}\p{M}\p{Nd}\p{Nl}\p{Pc}\x{200C}\x{200D}\s]+)",
               "pre_tokenizer Whitespace") {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    split_each(pieces, [&](std::string_view text) {
      return split_at_matches(text.size(), regex_.find_all(text), SplitBehavior::Removed,
                              /*invert=*/true);
    });
  }

 private:
  Regex regex_;
};

class WhitespaceSplit final : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    split_each(pieces, [](std::string_view text) {
      return split_at_matches(text.size(), match_chars(text, char_class::is_whitespace),
                              SplitBehavior::Removed);
    });
  }
};

enum class PrependScheme { Always, First, Never };

// SentencePiece style: spaces become the replacement character (U+2581), which
// may be prepended, and pieces start at each replacement character.
class Metaspace final : public PreTokenizer {
 public:
  Metaspace(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    for (PreToken& piece : pieces) {
      std::string replaced;
      std::size_t start_bytes = 0;
      for (std::size_t i = 0; i < piece.text.size(); ++i) {
        if (piece.text[i] == ' ') {
          replaced.append(replacement_);
        } else {
          replaced.push_back(piece.text[i]);
        }
        if (i < piece.start_bytes) start_bytes = replaced.size();
      }
      const bool prepend =
          scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && start_bytes > 0);
      if (prepend && !replaced.starts_with(replacement_)) {
        replaced.insert(0, replacement_);
        if (start_bytes > 0) start_bytes += replacement_.size();
      }
      piece.text = std::move(replaced);
      piece.start_bytes = start_bytes;
    }
    if (split_) {
      split_each(pieces, [&](std::string_view text) {
        std::vector<ByteRange> matches;
        for (std::size_t pos = text.find(replacement_); pos != std::string_view::npos;
             pos = text.find(replacement_, pos + replacement_.size())) {
          matches.push_back({pos, pos + replacement_.size()});
        }
        return split_at_matches(text.size(), matches, SplitBehavior::MergedWithNext);
      });
    }
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class Sequence final : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<const PreTokenizer>> steps)
      : steps_(std::move(steps)) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    for (const auto& step : steps_) step->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<const PreTokenizer>> steps_;
};

PrependScheme parse_prepend_scheme(const nlohmann::json& spec) {
  if (!spec.contains("prepend_scheme")) {  // files older than prepend_scheme
    return field_or(spec, "add_prefix_space", true) ? PrependScheme::Always : PrependScheme::Never;
  }
  const auto scheme = spec["prepend_scheme"].get<std::string>();
  if (scheme == "always") return PrependScheme::Always;
  if (scheme == "first") return PrependScheme::First;
  if (scheme == "never") return PrependScheme::Never;
  fail("pre_tokenizer Metaspace: unknown prepend_scheme '", scheme,
       "' (supported: always, first, never)");
}

}  // namespace

std::unique_ptr<const PreTokenizer> make_pre_tokenizer(const nlohmann::json& spec) {
  if (spec.is_null()) return nullptr;
  const std::string type = component_type(spec, "pre_tokenizer");
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevel>(field_or(spec, "add_prefix_space", true),
                                       field_or(spec, "use_regex", true));
  }
  if (type == "Split") {
    const std::string owner = "pre_tokenizer Split";
    return std::make_unique<Split>(
        Pattern::from_json(required_field<nlohmann::json>(spec, "pattern", owner), owner),
        parse_split_behavior(required_field<std::string>(spec, "behavior", owner), owner),
        field_or(spec, "invert", false));
  }
  if (type == "Digits") return std::make_unique<Digits>(field_or(spec, "individual_digits", false));
  if (type == "Whitespace") return std::make_unique<Whitespace>();
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplit>();
  if (type == "Metaspace") {
    const auto replacement = field_or<std::string>(spec, "replacement", "\xE2\x96\x81");
    if (replacement.empty() || utf8::find_invalid(replacement) ||
        utf8::sequence_length(static_cast<unsigned char>(replacement[0])) != replacement.size()) {
      fail("pre_tokenizer Metaspace: replacement must be one character, got '", replacement, "'");
    }
    return std::make_unique<Metaspace>(replacement, parse_prepend_scheme(spec),
                                       field_or(spec, "split", true));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<const PreTokenizer>> steps;
    for (const auto& step :
         required_field<nlohmann::json>(spec, "pretokenizers", "pre_tokenizer Sequence")) {
      if (auto pre_tokenizer = make_pre_tokenizer(step)) steps.push_back(std::move(pre_tokenizer));
    }
    return std::make_unique<Sequence>(std::move(steps));
  }
  fail("unsupported pre_tokenizer type '", type,
       "' (supported: ByteLevel, Split, Digits, Whitespace, WhitespaceSplit, Metaspace, Sequence, "
       "null)");
}

}  // namespace uq
