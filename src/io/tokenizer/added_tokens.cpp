#include "io/tokenizer/added_tokens.hpp"

#include <algorithm>

#include "io/tokenizer/char_class.hpp"
#include "io/tokenizer/utf8.hpp"

namespace uq {
namespace {

// The last code point of `text` (valid UTF-8, non-empty).
char32_t last_code_point(std::string_view text) {
  std::size_t start = text.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return utf8::next_code_point(text, start);
}

char32_t first_code_point(std::string_view text) {
  std::size_t pos = 0;
  return utf8::next_code_point(text, pos);
}

// Start of the whitespace run at the end of `text`.
std::size_t trailing_whitespace_start(std::string_view text) {
  std::size_t end = text.size();
  while (end > 0) {
    std::size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    std::size_t pos = start;
    if (!char_class::is_whitespace(utf8::next_code_point(text, pos))) break;
    end = start;
  }
  return end;
}

// Length of the whitespace run at the start of `text`.
std::size_t leading_whitespace_length(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t next = pos;
    if (!char_class::is_whitespace(utf8::next_code_point(text, next))) break;
    pos = next;
  }
  return pos;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens,
                                     std::vector<std::string> patterns)
    : tokens_(std::move(tokens)), nodes_(1) {
  for (std::size_t index = 0; index < tokens_.size(); ++index) {
    if (patterns[index].empty()) continue;
    is_first_byte_[static_cast<unsigned char>(patterns[index][0])] = true;
    std::int32_t node = 0;
    for (const char c : patterns[index]) {
      const auto byte = static_cast<unsigned char>(c);
      std::int32_t next = child(node, byte);
      if (next < 0) {
        next = static_cast<std::int32_t>(nodes_.size());
        auto& children = nodes_[node].children;
        children.insert(std::upper_bound(children.begin(), children.end(),
                                         std::pair<unsigned char, std::int32_t>{byte, -1}),
                        {byte, next});
        nodes_.emplace_back();
      }
      node = next;
    }
    // The same text twice: the first token listed wins.
    if (nodes_[node].token < 0) nodes_[node].token = static_cast<std::int32_t>(index);
  }
}

std::int32_t AddedTokenMatcher::child(std::int32_t node, unsigned char byte) const {
  const auto& children = nodes_[node].children;
  const auto it = std::lower_bound(children.begin(), children.end(), byte,
                                   [](const std::pair<unsigned char, std::int32_t>& entry,
                                      unsigned char b) { return entry.first < b; });
  return it != children.end() && it->first == byte ? it->second : -1;
}

std::optional<std::pair<std::int32_t, std::size_t>> AddedTokenMatcher::longest_at(
    std::string_view text, std::size_t pos) const {
  std::optional<std::pair<std::int32_t, std::size_t>> best;
  std::int32_t node = 0;
  for (std::size_t i = pos; i < text.size(); ++i) {
    node = child(node, static_cast<unsigned char>(text[i]));
    if (node < 0) break;
    if (nodes_[node].token >= 0) best = {{nodes_[node].token, i + 1}};
  }
  return best;
}

std::vector<AddedTokenSplit> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<AddedTokenSplit> splits;
  std::size_t covered = 0;  // end of the last emitted split
  std::size_t pos = 0;
  while (pos < text.size() && !empty()) {
    const auto found = is_first_byte_[static_cast<unsigned char>(text[pos])] ? longest_at(text, pos)
                                                                             : std::nullopt;
    if (!found) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[found->first];
    std::size_t start = pos;
    std::size_t stop = found->second;
    pos = stop;  // the scan goes on after the match even if the match is discarded below
    if (token.single_word) {
      const bool word_before =
          start > 0 && char_class::is_word(last_code_point(text.substr(0, start)));
      const bool word_after =
          stop < text.size() && char_class::is_word(first_code_point(text.substr(stop)));
      if (word_before || word_after) continue;
    }
    if (token.lstrip) start = std::max(trailing_whitespace_start(text.substr(0, start)), covered);
    if (token.rstrip) stop += leading_whitespace_length(text.substr(stop));
    if (covered < start) splits.push_back({{covered, start}, std::nullopt});
    splits.push_back({{start, stop}, token.id});
    covered = stop;
    pos = stop;
  }
  if (covered < text.size()) splits.push_back({{covered, text.size()}, std::nullopt});
  return splits;
}

}  // namespace uq
