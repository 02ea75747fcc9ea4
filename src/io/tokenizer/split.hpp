#pragma once
// Cutting a string at pattern matches with the HF SplitDelimiterBehavior rules.
#include <string>
#include <string_view>
#include <vector>

#include "io/tokenizer/byte_range.hpp"
#include "io/tokenizer/utf8.hpp"

namespace uq {

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Parses "Removed", "Isolated", ... (`owner` names the component for errors).
SplitBehavior parse_split_behavior(std::string_view name, std::string_view owner);

// Pieces of a `text_size`-byte string cut at `matches` (sorted, non-overlapping).
// With `invert` the matches are the content and the gaps the delimiters.
// Empty pieces are dropped, as HF does.
std::vector<ByteRange> split_at_matches(std::size_t text_size,
                                        const std::vector<ByteRange>& matches,
                                        SplitBehavior behavior, bool invert = false);

// Matches of single characters for which `predicate` holds (each one its own match).
template <class Predicate>
std::vector<ByteRange> match_chars(std::string_view text, Predicate predicate) {
  std::vector<ByteRange> matches;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t begin = pos;
    if (predicate(utf8::next_code_point(text, pos))) matches.push_back({begin, pos});
  }
  return matches;
}

}  // namespace uq
