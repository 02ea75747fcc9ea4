#include "calibration/calibration_windows.hpp"

#include "core/error.hpp"

namespace uq {
namespace {

std::uint64_t splitmix64(std::uint64_t& state) {
  state += 0x9E3779B97F4A7C15ull;
  std::uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

std::vector<std::vector<std::int32_t>> calibration_windows(std::span<const std::int32_t> ids,
                                                           int count, std::int64_t ctx,
                                                           std::uint64_t seed,
                                                           std::string_view source) {
  if (count < 1) fail("calibration_samples ", count, " must be at least 1");
  if (ctx < 1) fail("calibration_ctx ", ctx, " must be at least 1");
  const auto size = static_cast<std::int64_t>(ids.size());
  if (size < ctx) {
    fail(source, ": ", size, " tokens, fewer than one calibration window of ", ctx);
  }
  const auto starts = static_cast<std::uint64_t>(size - ctx + 1);
  std::uint64_t state = seed;
  std::vector<std::vector<std::int32_t>> windows;
  windows.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    // The modulo bias (< starts / 2^64) is irrelevant for picking text windows.
    const auto start = static_cast<std::size_t>(splitmix64(state) % starts);
    windows.emplace_back(
        ids.begin() + static_cast<std::ptrdiff_t>(start),
        ids.begin() + static_cast<std::ptrdiff_t>(start + static_cast<std::size_t>(ctx)));
  }
  return windows;
}

}  // namespace uq
