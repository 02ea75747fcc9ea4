// The stream GEMV's split of output rows over blocks (src/kernels/cuda/stream_split.hpp), with
// occupancy modelled on the host: a block needs a fixed ring plus 8 bytes per row, an SM has
// 228 KB and at most `cap` blocks (registers). Checked: one wave of the most blocks that fit,
// the largest block where no one-wave split fits, and 0 where nothing fits.
#include <gtest/gtest.h>

#include <algorithm>

#include "kernels/cuda/stream_split.hpp"

namespace {

struct ModelledSm {
  long ring_bytes;
  int cap;
  int operator()(int rows) const {
    const long bytes = ring_bytes + 8L * rows;
    return static_cast<int>(std::min<long>(cap, 228L * 1024 / bytes));
  }
};

int blocks(int out, int rows) {
  return (out + rows - 1) / rows;
}

TEST(StreamSplit, OneWaveOfEvenBlocksOnTheDecoderShapes) {
  const ModelledSm sm{18 * 1024, 5};
  for (const int out : {4096, 6144, 14336, 28672, 128256}) {
    SCOPED_TRACE(out);
    const int rows = uq::cuda::stream_rows_per_block(out, 132, sm);
    ASSERT_GE(rows, 1);
    EXPECT_LE(blocks(out, rows), sm(rows) * 132);  // one wave
    // No fewer rows per block would still fit in one wave: the split is as even as it gets.
    EXPECT_GE(rows, (out + sm(rows) * 132 - 1) / (sm(rows) * 132));
  }
  EXPECT_EQ(uq::cuda::stream_rows_per_block(14336, 132, sm), 22);  // 652 blocks of 660
}

TEST(StreamSplit, TakesTheMostBlocksTheSharedMemoryAllows) {
  // 110000-byte ring: 2 blocks per SM fit up to 2866 rows per block (233472 / 2 bytes each),
  // so 128256 rows go as 264 blocks of 486, not 132 of 972 (1 block per SM, also one wave).
  const ModelledSm sm{110000, 8};
  const int rows = uq::cuda::stream_rows_per_block(128256, 132, sm);
  EXPECT_EQ(rows, 486);
  EXPECT_EQ(sm(rows), 2);
}

TEST(StreamSplit, TakesTheLargestBlockThatFitsWhereNoOneWaveSplitDoes) {
  // 200 KB ring: one block per SM holds at most 3584 rows (28672 bytes of partial sums); one
  // wave of 1000000 rows would need 7576.
  const ModelledSm sm{200 * 1024, 8};
  const int rows = uq::cuda::stream_rows_per_block(1000000, 132, sm);
  EXPECT_EQ(rows, 3584);
  EXPECT_EQ(sm(rows), 1);
  EXPECT_EQ(sm(rows + 1), 0);
}

TEST(StreamSplit, SearchesBelowTheFirstGuessWhereItDoesNotFit) {
  // 10 million rows: the first guess (2368 rows per block) needs 18944 bytes of partial sums
  // on a 215000-byte ring; at most 2309 fit.
  const ModelledSm sm{215000, 8};
  const int rows = uq::cuda::stream_rows_per_block(10000000, 132, sm);
  EXPECT_EQ(rows, 2309);
  EXPECT_EQ(sm(rows + 1), 0);
}

TEST(StreamSplit, ZeroWhereNotEvenOneRowFitsAndOneRowForTinyOutputs) {
  EXPECT_EQ(uq::cuda::stream_rows_per_block(4096, 132, ModelledSm{300 * 1024, 8}), 0);
  EXPECT_EQ(uq::cuda::stream_rows_per_block(37, 132, ModelledSm{18 * 1024, 5}), 1);
}

}  // namespace
