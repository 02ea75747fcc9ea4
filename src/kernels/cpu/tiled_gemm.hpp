#pragma once
// The prompt-sized product for weights stored in any compressed form:
// y[rows, out] = x[rows, in] · Wᵀ, where W is only ever available as tiles of
// rows decoded to float32. Each thread of our pool owns a slice of output
// features and runs single-threaded sgemm tile by tile, so at most one tile
// per thread exists in float and the decode overlaps across threads.
#include <cstdint>
#include <functional>

namespace uq::cpu {

// Returns rows [first, first + count) of W as float32 [count, in]: either
// written into `scratch` (room for count * in floats) or a pointer to
// storage that already is float32.
using RowTileDecoder =
    std::function<const float*(std::int64_t first, std::int64_t count, float* scratch)>;

void tiled_gemm(std::int64_t out, std::int64_t in, const float* x, std::int64_t rows, float* y,
                const RowTileDecoder& decode_rows);

}  // namespace uq::cpu
