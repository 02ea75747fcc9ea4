#include "io/tokenizer/split.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace uq {
namespace {

struct Segment {
  ByteRange range;
  bool is_match;
};

// The whole text as alternating gaps and matches.
std::vector<Segment> segments(std::size_t text_size, const std::vector<ByteRange>& matches,
                              bool invert) {
  std::vector<Segment> result;
  std::size_t previous = 0;
  for (const ByteRange& match : matches) {
    if (previous != match.begin) result.push_back({{previous, match.begin}, invert});
    result.push_back({match, !invert});
    previous = match.end;
  }
  if (previous != text_size) result.push_back({{previous, text_size}, invert});
  return result;
}

}  // namespace

SplitBehavior parse_split_behavior(std::string_view name, std::string_view owner) {
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  fail(owner, ": unknown split behavior '", name,
       "' (supported: Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous)");
}

std::vector<ByteRange> split_at_matches(std::size_t text_size,
                                        const std::vector<ByteRange>& matches,
                                        SplitBehavior behavior, bool invert) {
  const std::vector<Segment> all = segments(text_size, matches, invert);
  std::vector<ByteRange> pieces;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Removed:
      for (const Segment& segment : all) {
        if (!segment.is_match) pieces.push_back(segment.range);
      }
      break;
    case SplitBehavior::Isolated:
      for (const Segment& segment : all) pieces.push_back(segment.range);
      break;
    case SplitBehavior::Contiguous:
      for (const Segment& segment : all) {
        if (segment.is_match == previous_match && !pieces.empty()) {
          pieces.back().end = segment.range.end;
        } else {
          pieces.push_back(segment.range);
        }
        previous_match = segment.is_match;
      }
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const Segment& segment : all) {
        if (segment.is_match && !previous_match && !pieces.empty()) {
          pieces.back().end = segment.range.end;
        } else {
          pieces.push_back(segment.range);
        }
        previous_match = segment.is_match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto it = all.rbegin(); it != all.rend(); ++it) {
        if (it->is_match && !previous_match && !pieces.empty()) {
          pieces.back().begin = it->range.begin;
        } else {
          pieces.push_back(it->range);
        }
        previous_match = it->is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
  }
  std::erase_if(pieces, [](const ByteRange& piece) { return piece.begin == piece.end; });
  return pieces;
}

}  // namespace uq
