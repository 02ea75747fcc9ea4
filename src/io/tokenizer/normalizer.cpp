#include "io/tokenizer/normalizer.hpp"

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <vector>

#include <utf8proc.h>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/tokenizer/char_class.hpp"
#include "io/tokenizer/json_spec.hpp"
#include "io/tokenizer/pattern.hpp"
#include "io/tokenizer/utf8.hpp"

namespace uq {
namespace {

std::string utf8proc_normalize(std::string_view text, int options, std::string_view form) {
  if (text.empty()) return {};
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t length = utf8proc_map(
      reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
      static_cast<utf8proc_ssize_t>(text.size()), &result, static_cast<utf8proc_option_t>(options));
  if (length < 0) fail("normalizer ", form, ": ", utf8proc_errmsg(length));
  std::string normalized(reinterpret_cast<const char*>(result), static_cast<std::size_t>(length));
  std::free(result);
  return normalized;
}

class UnicodeNormalization final : public Normalizer {
 public:
  UnicodeNormalization(std::string form, int options) : form_(std::move(form)), options_(options) {}
  void normalize(std::string& text, std::size_t& start_bytes) const override {
    std::string normalized = utf8proc_normalize(text, options_, form_);
    if (start_bytes > 0 && !normalized.empty()) {
      // The start keeps what its own characters normalize to, unless they
      // composed with what follows: then the composed character takes their place.
      const std::string head = utf8proc_normalize(text.substr(0, start_bytes), options_, form_);
      start_bytes = normalized.starts_with(head)
                        ? head.size()
                        : utf8::sequence_length(static_cast<unsigned char>(normalized[0]));
    }
    text = std::move(normalized);
  }

 private:
  std::string form_;
  int options_;
};

class Lowercase final : public Normalizer {
 public:
  void normalize(std::string& text, std::size_t& start_bytes) const override {
    std::string out;
    out.reserve(text.size());
    std::size_t new_start_bytes = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
      const char32_t c = utf8::next_code_point(text, pos);
      if (c == U'\u0130') {  // full lowercase mapping of 'İ' is "i" + combining dot
        out.append("i\xCC\x87");
      } else {
        utf8::append(out,
                     static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
      }
      if (pos <= start_bytes) new_start_bytes = out.size();
    }
    start_bytes = new_start_bytes;
    text = std::move(out);
  }
};

class StripAccents final : public Normalizer {
 public:
  void normalize(std::string& text, std::size_t& start_bytes) const override {
    std::string out;
    out.reserve(text.size());
    std::size_t new_start_bytes = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
      const std::size_t begin = pos;
      if (!char_class::is_nonspacing_mark(utf8::next_code_point(text, pos))) {
        out.append(text, begin, pos - begin);
      }
      if (pos <= start_bytes) new_start_bytes = out.size();
    }
    start_bytes = new_start_bytes;
    text = std::move(out);
  }
};

// Replaces every match by `content`. As in HF, the replacement is aligned with
// the last replaced character (with the previous one for an empty match, and
// with the start for an empty match at 0), which decides what stays at the start.
class Replace final : public Normalizer {
 public:
  Replace(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text, std::size_t& start_bytes) const override {
    std::string out;
    out.reserve(text.size());
    std::optional<std::size_t> start_end;  // where the start-aligned part of `out` ends
    const auto append_kept = [&](std::size_t from, std::size_t to) {
      if (!start_end && to > start_bytes) {
        start_end = out.size() + (start_bytes > from ? start_bytes - from : 0);
      }
      out.append(text, from, to - from);
    };
    std::size_t copied = 0;
    for (const ByteRange& match : pattern_.find_all(text)) {
      append_kept(copied, match.begin);
      const bool aligned_with_start =
          match.end > match.begin ? match.end <= start_bytes : match.begin <= start_bytes;
      if (!aligned_with_start && !start_end) start_end = out.size();
      out.append(content_);
      copied = match.end;
    }
    append_kept(copied, text.size());
    start_bytes = start_end.value_or(out.size());
    text = std::move(out);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text, std::size_t& start_bytes) const override {
    if (text.empty()) return;
    text.insert(0, prefix_);
    start_bytes += prefix_.size();
  }

 private:
  std::string prefix_;
};

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text, std::size_t& start_bytes) const override {
    std::size_t begin = 0;
    std::size_t end = text.size();
    if (left_) {
      while (begin < end) {
        std::size_t next = begin;
        if (!char_class::is_whitespace(utf8::next_code_point(text, next))) break;
        begin = next;
      }
    }
    if (right_) {
      while (end > begin) {
        std::size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        std::size_t next = start;
        if (!char_class::is_whitespace(utf8::next_code_point(text, next))) break;
        end = start;
      }
    }
    start_bytes = start_bytes > begin ? std::min(start_bytes, end) - begin : 0;
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_;
  bool right_;
};

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<const Normalizer>> steps)
      : steps_(std::move(steps)) {}
  void normalize(std::string& text, std::size_t& start_bytes) const override {
    for (const auto& step : steps_) step->normalize(text, start_bytes);
  }

 private:
  std::vector<std::unique_ptr<const Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<const Normalizer> make_normalizer(const nlohmann::json& spec) {
  if (spec.is_null()) return nullptr;
  const std::string type = component_type(spec, "normalizer");
  const int stable = UTF8PROC_STABLE;
  if (type == "NFC") return std::make_unique<UnicodeNormalization>(type, stable | UTF8PROC_COMPOSE);
  if (type == "NFD")
    return std::make_unique<UnicodeNormalization>(type, stable | UTF8PROC_DECOMPOSE);
  if (type == "NFKC") {
    return std::make_unique<UnicodeNormalization>(type,
                                                  stable | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
  }
  if (type == "NFKD") {
    return std::make_unique<UnicodeNormalization>(type,
                                                  stable | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  }
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "Replace") {
    return std::make_unique<Replace>(
        Pattern::from_json(required_field<nlohmann::json>(spec, "pattern", "normalizer Replace"),
                           "normalizer Replace"),
        required_field<std::string>(spec, "content", "normalizer Replace"));
  }
  if (type == "Prepend") {
    return std::make_unique<Prepend>(
        required_field<std::string>(spec, "prepend", "normalizer Prepend"));
  }
  if (type == "Strip") {
    return std::make_unique<Strip>(field_or(spec, "strip_left", true),
                                   field_or(spec, "strip_right", true));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<const Normalizer>> steps;
    for (const auto& step :
         required_field<nlohmann::json>(spec, "normalizers", "normalizer Sequence")) {
      if (auto normalizer = make_normalizer(step)) steps.push_back(std::move(normalizer));
    }
    return std::make_unique<Sequence>(std::move(steps));
  }
  fail("unsupported normalizer type '", type,
       "' (supported: NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, Replace, Prepend, Strip, "
       "Sequence, null)");
}

}  // namespace uq
