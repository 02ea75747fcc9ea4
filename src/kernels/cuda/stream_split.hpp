#pragma once
// How the stream GEMV (affine_gemv_stream.cuh) splits `out` weight rows over its blocks: the
// fewest rows per block that still run in one wave, i.e. the most blocks that fit at once. A
// block's shared memory grows with its rows (their partial sums), so the count that fits is
// checked again as the rows grow: starting from the most blocks an SM could ever hold, the rows
// rise to what one wave needs until the count settles. Where no one-wave split fits (very long
// outputs of a very wide `in`), the largest block that fits is taken and the grid takes more
// than one wave.
// Host-only and CUDA-free: `blocks_per_sm(rows_per_block)` is the caller's occupancy query,
// non-increasing in its argument.
namespace uq::cuda {

constexpr int kMaxBlocksPerSm = 32;  // Hopper's limit; an upper bound for the first guess

// Rows per block, or 0 where not even one row per block fits an SM.
template <class BlocksPerSm>
int stream_rows_per_block(int out, int sms, BlocksPerSm blocks_per_sm) {
  const auto fits = [&](int rows) { return blocks_per_sm(rows) >= 1; };
  // The largest count in [fitting, failing) that fits.
  const auto largest_fitting = [&](int fitting, int failing) {
    while (failing - fitting > 1) {
      const int middle = fitting + (failing - fitting) / 2;
      (fits(middle) ? fitting : failing) = middle;
    }
    return fitting;
  };
  const long most_blocks = static_cast<long>(sms) * kMaxBlocksPerSm;
  int rows = static_cast<int>((out + most_blocks - 1) / most_blocks);
  if (!fits(rows)) return rows > 1 && fits(1) ? largest_fitting(1, rows) : 0;
  for (;;) {
    const int per_sm = blocks_per_sm(rows);
    const int want = (out + per_sm * sms - 1) / (per_sm * sms);
    if (want <= rows) return rows;
    if (!fits(want)) return largest_fitting(rows, want);  // no one-wave split fits
    rows = want;
  }
}

}  // namespace uq::cuda
