#include "io/tokenizer/regex.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.hpp"
#include "io/tokenizer/utf8.hpp"

namespace uq {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

// Per-thread match state: match data for one match and a JIT stack large enough
// for long runs of whitespace under patterns such as \s+(?!\S).
struct MatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);

  MatchState() {
    pcre2_jit_stack_assign(context, nullptr, jit_stack);
    // The default limit (10M backtracking steps) is hit by tokenizer patterns
    // such as \s*[\r\n]+ on a few MB of spaces; their work is linear anyway.
    pcre2_set_match_limit(context, 0xFFFFFFFFu);
  }
  ~MatchState() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_data_free(data);
  }
  MatchState(const MatchState&) = delete;
  MatchState& operator=(const MatchState&) = delete;
};

MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

}  // namespace

struct Regex::Compiled {
  pcre2_code* code = nullptr;
  std::string pattern;
  ~Compiled() { pcre2_code_free(code); }
};

Regex::Regex(std::string_view pattern, std::string_view owner) {
  auto compiled = std::make_shared<Compiled>();
  compiled->pattern = pattern;
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  compiled->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                 PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (compiled->code == nullptr) {
    fail(owner, ": invalid regex '", pattern, "' at offset ", error_offset, ": ",
         pcre2_message(error_code));
  }
  // Without JIT support PCRE2 falls back to its interpreter: slower, same results.
  pcre2_jit_compile(compiled->code, PCRE2_JIT_COMPLETE);
  compiled_ = std::move(compiled);
}

std::vector<ByteRange> Regex::find_all(std::string_view text) const {
  std::vector<ByteRange> matches;
  MatchState& state = match_state();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t start = 0;
  while (start <= text.size()) {
    const int rc = pcre2_match(compiled_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK,
                               state.data, state.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      fail("regex '", compiled_->pattern, "' failed on a ", text.size(),
           "-byte text: ", pcre2_message(rc));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.data);
    const ByteRange match{ovector[0], ovector[1]};
    matches.push_back(match);
    if (match.end > match.begin) {
      start = match.end;
    } else if (match.end < text.size()) {
      start = match.end + utf8::sequence_length(static_cast<unsigned char>(text[match.end]));
    } else {
      break;
    }
  }
  return matches;
}

std::string Regex::replace_all(std::string_view text, std::string_view replacement) const {
  std::string out;
  out.reserve(text.size());
  std::size_t copied = 0;
  for (const ByteRange& match : find_all(text)) {
    out.append(text.substr(copied, match.begin - copied));
    out.append(replacement);
    copied = match.end;
  }
  out.append(text.substr(copied));
  return out;
}

std::string escape_regex(std::string_view literal) {
  std::string escaped = "\\Q";
  std::size_t pos = 0;
  // \Q...\E quotes everything except a literal "\E", which is split around.
  while (true) {
    const std::size_t found = literal.find("\\E", pos);
    if (found == std::string_view::npos) break;
    escaped.append(literal.substr(pos, found - pos));
    escaped.append("\\E\\\\E\\Q");
    pos = found + 2;
  }
  escaped.append(literal.substr(pos));
  escaped.append("\\E");
  return escaped;
}

}  // namespace uq
