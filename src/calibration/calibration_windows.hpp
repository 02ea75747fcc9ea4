#pragma once
// Calibration samples: `count` windows of `ctx` consecutive token ids drawn
// from a tokenized text at start offsets chosen by a seeded generator, so the
// same text, count, ctx and seed always give the same windows (on every
// platform: the offsets come from splitmix64, not from <random>'s
// implementation-defined distributions).
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace uq {

// Throws uq::Error naming `source` when the text has fewer than `ctx` tokens,
// or when count or ctx is below 1.
std::vector<std::vector<std::int32_t>> calibration_windows(std::span<const std::int32_t> ids,
                                                           int count, std::int64_t ctx,
                                                           std::uint64_t seed,
                                                           std::string_view source);

}  // namespace uq
