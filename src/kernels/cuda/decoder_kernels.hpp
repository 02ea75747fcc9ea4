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

// Floats of workspace rope_attention needs for `count` rows over at most `keys` keys. Zero it
// (on the stream) once before its first use: it starts with the decode kernel's per-head
// arrival counters, which every call leaves at zero again. One workspace serves one shape.
std::size_t attention_workspace_floats(const AttentionShape& shape, int count, int keys);

// One layer's attention for `count` rows of the fused q|k|v (layout as for rope_store_kv, row r
// at position *first_position + r): RoPE of the rows' query and key heads, the rotated keys and
// the values stored into the layer's cache at their positions, and
// out[r, h*head_dim..] = softmax(q k^T / sqrt(head_dim)) v over the cached keys row r sees
// (causal, sliding window). max_keys >= *first_position + count bounds the keys (it sizes the
// decode grid). The query heads of qkv are scratch afterwards; the rest of qkv is left as it
// was. Many rows (a prompt): rope_store_kv, then query tiles sharing key/value tiles staged in
// shared memory (flash-attention style). Few rows (decode): one kernel; its blocks take splits
// of the keys, rotate their queries and the new keys themselves, and the last block of a head
// to finish merges the splits' partial softmaxes in split order (deterministic). The keys and
// values cached before *first_position, and *first_position itself, must not be written by
// the kernels this call follows on the stream: the decode kernel reads them before its
// programmatic wait (pdl_launch.hpp). In a decoder they come from earlier steps. The caches, the
// workspace and out must be 16-byte aligned (cudaMalloc'd buffers at multiples of head_dim).
void rope_attention(float* qkv, int count, int row_stride, const float* inverse_frequencies,
                    const int* first_position, int max_keys, float* k_cache, float* v_cache,
                    const AttentionShape& shape, float* workspace, float* out, cudaStream_t stream);

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
