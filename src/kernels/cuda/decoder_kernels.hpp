#pragma once
// The decoder's non-matmul stages on the GPU, float32 activations with fp32
// arithmetic, each the same function as its CPU counterpart in src/model/:
// embedding gather, RMSNorm, RoPE (rotate_half layout), the KV-cache store,
// causal grouped-query attention with online softmax, SwiGLU, the linear
// epilogue (bias, residual) and greedy argmax. Pointers are device memory;
// every launch is checked. Row strides let stages read the fused q|k|v and
// gate|up outputs in place.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/affine_device_weight.hpp"

namespace uq::cuda {

// out[t, :] = table[ids[t], :] as float; ids must lie in the table.
void gather_rows(const __nv_bfloat16* table, int width, const std::int32_t* ids, int count,
                 float* out, cudaStream_t stream);
void gather_rows(const float* table, int width, const std::int32_t* ids, int count, float* out,
                 cudaStream_t stream);
// Dequantized rows scale * q + bias of an MLX affine matrix.
void gather_rows(const AffineDeviceWeight& table, const std::int32_t* ids, int count, float* out,
                 cudaStream_t stream);

// out[r, i] = weight[i] * x[r, i] / sqrt(mean_i x[r, i]^2 + eps)
void rms_norm(const float* x, int rows, int dim, const float* weight, float eps, float* out,
              cudaStream_t stream);

// Positions come from device memory (*first_position), so that a captured CUDA graph of a
// decode step replays at any position.
// For `rows` rows of the fused q|k|v (row r at qkv + r * row_stride, position
// *first_position + r: `heads` query heads, then kv_heads key heads, then kv_heads value heads):
// rotates the query heads in place (RoPE, rotate_half layout) and writes the rotated keys and
// the values into one layer's cache, laid out [capacity][kv_heads][head_dim]. The keys in qkv
// are left as they were. inverse_frequencies has head_dim / 2 entries.
void rope_store_kv(float* qkv, int rows, int row_stride, int heads, int kv_heads, int head_dim,
                   const float* inverse_frequencies, const int* first_position, float* k_cache,
                   float* v_cache, cudaStream_t stream);

struct AttentionShape {
  int heads = 0;
  int kv_heads = 0;
  int head_dim = 0;        // a multiple of 32, at most 256
  int sliding_window = 0;  // 0: every earlier key; else keys in (p - window, p]
};

// Floats of workspace attention needs for `count` queries over at most `keys` keys.
std::size_t attention_workspace_floats(const AttentionShape& shape, int count, int keys);

// out[r, h*head_dim..] = softmax(q k^T / sqrt(head_dim)) v for the queries at positions
// *first_position + r, over the cached keys they see (the cache already holds them);
// max_keys >= *first_position + count bounds the keys (it sizes the decode split).
// q row r starts at q + r * q_stride. Many queries (a prompt): query tiles share key/value
// tiles staged in shared memory (flash-attention style). Few queries (decode): the keys are
// split over blocks, each keeps a partial softmax, and a second kernel combines them.
void attention(const float* q, int count, int q_stride, const int* first_position, int max_keys,
               const float* k_cache, const float* v_cache, const AttentionShape& shape,
               float* workspace, float* out, cudaStream_t stream);

// out[r, i] = silu(gate[r, i]) * up[r, i]; gate row r at gate_up + r * 2 * width, up after it.
void swiglu(const float* gate_up, int rows, int width, float* out, cudaStream_t stream);

// Splits float x [rows, width] into bf16 high and low parts: hi rows 0..rows-1, lo rows
// rows..2*rows-1 of `out`, so that hi + lo carries 16 significant bits of x.
void split_bf16(const float* x, int rows, int width, __nv_bfloat16* out, cudaStream_t stream);

// y[r, column + o] = (accumulate ? y[...] : 0) + a[r, o] + (b ? b[r, o] : 0) + (bias ? bias[o] : 0)
// for r < rows, o < width; a and b are [rows, width], y has row stride y_stride.
void linear_epilogue(const float* a, const float* b, const float* bias, int rows, int width,
                     float* y, int y_stride, int column, bool accumulate, cudaStream_t stream);

// *result = index of the largest of values[0..count) (the first on ties; 0 when every value is
// NaN). workspace: argmax_workspace_floats() floats of device memory.
std::size_t argmax_workspace_floats();
void argmax(const float* values, int count, float* workspace, std::int32_t* result,
            cudaStream_t stream);

}  // namespace uq::cuda
