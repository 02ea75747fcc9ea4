#pragma once
// The format-independent kernels over FormatView (one instantiation per DeviceFormat):
// a GEMV for up to kFormatGemvMaxRows input rows that decodes W 8 elements at a time next to
// the product, and a row decoder that writes rows of W as float32 (tiles for the sgemm prompt
// path, embedding gathers).
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/format_view.hpp"

namespace uq::cuda {

inline constexpr int kFormatGemvMaxRows = 16;

// y [rows, w.out] = x [rows, w.in] W^T, rows in [1, kFormatGemvMaxRows].
void format_gemv(const FormatView& w, const float* x, int rows, float* y, cudaStream_t stream);

// out [count, w.in] = rows of W: row ids[t] where ids is not null, else first + t.
void format_decode_rows(const FormatView& w, int first, const std::int32_t* ids, int count,
                        float* out, cudaStream_t stream);

}  // namespace uq::cuda
