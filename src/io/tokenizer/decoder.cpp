#include "io/tokenizer/decoder.hpp"

#include <optional>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/tokenizer/byte_level.hpp"
#include "io/tokenizer/json_spec.hpp"
#include "io/tokenizer/pattern.hpp"
#include "io/tokenizer/utf8.hpp"

namespace uq {
namespace {

// Byte-level characters back to bytes (a token with a character outside the
// map contributes its own UTF-8), then one lossily decoded string.
class ByteLevel final : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string bytes;
    for (const std::string& token : tokens) {
      if (auto decoded = byte_level::decode(token)) {
        bytes.append(*decoded);
      } else {
        bytes.append(token);
      }
    }
    return {utf8::from_bytes_lossy(bytes)};
  }
};

// Runs of "<0xAB>" tokens become their bytes, or one U+FFFD per byte when the
// run is not valid UTF-8.
class ByteFallback final : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::vector<std::string> result;
    std::string pending_bytes;
    const auto flush = [&] {
      if (pending_bytes.empty()) return;
      if (!utf8::find_invalid(pending_bytes)) {
        result.push_back(pending_bytes);
      } else {
        for (std::size_t i = 0; i < pending_bytes.size(); ++i) result.emplace_back("\xEF\xBF\xBD");
      }
      pending_bytes.clear();
    };
    for (std::string& token : tokens) {
      if (const auto byte = parse_byte_token(token)) {
        pending_bytes.push_back(static_cast<char>(*byte));
      } else {
        flush();
        result.push_back(std::move(token));
      }
    }
    flush();
    return result;
  }

 private:
  static std::optional<unsigned char> parse_byte_token(const std::string& token) {
    if (token.size() != 6 || !token.starts_with("<0x") || token.back() != '>') return std::nullopt;
    int value = 0;
    for (const char c : token.substr(3, 2)) {
      int digit = 0;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else {
        return std::nullopt;
      }
      value = value * 16 + digit;
    }
    return static_cast<unsigned char>(value);
  }
};

class Fuse final : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string joined;
    for (const std::string& token : tokens) joined.append(token);
    return {joined};
  }
};

// Removes up to `start` leading and `stop` trailing `content` characters of each token.
class Strip final : public Decoder {
 public:
  Strip(char32_t content, std::size_t start, std::size_t stop)
      : content_(content), start_(start), stop_(stop) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (std::string& token : tokens) {
      std::vector<char32_t> chars;
      for (std::size_t pos = 0; pos < token.size();)
        chars.push_back(utf8::next_code_point(token, pos));
      std::size_t begin = 0;
      while (begin < start_ && begin < chars.size() && chars[begin] == content_) ++begin;
      std::size_t end = chars.size();
      for (std::size_t i = 0; i < stop_ && end > begin && chars[end - 1] == content_; ++i) --end;
      std::string stripped;
      for (std::size_t i = begin; i < end; ++i) utf8::append(stripped, chars[i]);
      token = std::move(stripped);
    }
    return tokens;
  }

 private:
  char32_t content_;
  std::size_t start_;
  std::size_t stop_;
};

class Replace final : public Decoder {
 public:
  Replace(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (std::string& token : tokens) token = pattern_.replace_all(token, content_);
    return tokens;
  }

 private:
  Pattern pattern_;
  std::string content_;
};

// The replacement character becomes a space, except in the first token when a
// prefix space was prepended at encoding (there it is dropped).
class Metaspace final : public Decoder {
 public:
  Metaspace(std::string replacement, bool drop_in_first)
      : replacement_(std::move(replacement)), drop_in_first_(drop_in_first) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const std::string_view space = (i == 0 && drop_in_first_) ? "" : " ";
      std::string out;
      std::string_view token = tokens[i];
      for (std::size_t pos = 0; pos < token.size();) {
        if (token.substr(pos).starts_with(replacement_)) {
          out.append(space);
          pos += replacement_.size();
        } else {
          out.push_back(token[pos++]);
        }
      }
      tokens[i] = std::move(out);
    }
    return tokens;
  }

 private:
  std::string replacement_;
  bool drop_in_first_;
};

class Sequence final : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<const Decoder>> steps) : steps_(std::move(steps)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (const auto& step : steps_) tokens = step->decode_chain(std::move(tokens));
    return tokens;
  }

 private:
  std::vector<std::unique_ptr<const Decoder>> steps_;
};

char32_t single_char(const std::string& text, std::string_view owner) {
  std::size_t pos = 0;
  if (text.empty() || utf8::find_invalid(text) ||
      (utf8::next_code_point(text, pos), pos != text.size())) {
    fail(owner, ": expected one character, got '", text, "'");
  }
  pos = 0;
  return utf8::next_code_point(text, pos);
}

}  // namespace

std::unique_ptr<const Decoder> make_decoder(const nlohmann::json& spec) {
  if (spec.is_null()) return nullptr;
  const std::string type = component_type(spec, "decoder");
  if (type == "ByteLevel") return std::make_unique<ByteLevel>();
  if (type == "ByteFallback") return std::make_unique<ByteFallback>();
  if (type == "Fuse") return std::make_unique<Fuse>();
  if (type == "Strip") {
    const std::string owner = "decoder Strip";
    return std::make_unique<Strip>(
        single_char(required_field<std::string>(spec, "content", owner), owner),
        field_or<std::size_t>(spec, "start", 0), field_or<std::size_t>(spec, "stop", 0));
  }
  if (type == "Replace") {
    const std::string owner = "decoder Replace";
    return std::make_unique<Replace>(
        Pattern::from_json(required_field<nlohmann::json>(spec, "pattern", owner), owner),
        required_field<std::string>(spec, "content", owner));
  }
  if (type == "Metaspace") {
    const auto replacement = field_or<std::string>(spec, "replacement", "\xE2\x96\x81");
    single_char(replacement, "decoder Metaspace");
    bool prepends = field_or(spec, "add_prefix_space", true);
    if (spec.contains("prepend_scheme")) prepends = spec["prepend_scheme"] != "never";
    return std::make_unique<Metaspace>(replacement, prepends);
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<const Decoder>> steps;
    for (const auto& step : required_field<nlohmann::json>(spec, "decoders", "decoder Sequence")) {
      if (auto decoder = make_decoder(step)) steps.push_back(std::move(decoder));
    }
    return std::make_unique<Sequence>(std::move(steps));
  }
  fail("unsupported decoder type '", type,
       "' (supported: ByteLevel, ByteFallback, Fuse, Strip, Replace, Metaspace, Sequence, null)");
}

}  // namespace uq
