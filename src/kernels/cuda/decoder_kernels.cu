#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/decoder_kernels.hpp"

namespace uq::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = 4;            // attention blocks: 4 warps
constexpr int kSplitKeys = 256;      // keys one decode-attention block covers
constexpr int kQueriesPerWarp = 4;   // prompt attention: a warp keeps 4 queries
constexpr int kTileFloats = 4096;    // prompt attention: key tile = kTileFloats / head_dim keys
constexpr int kTiledMinQueries = 8;  // from this many queries on, the tiled kernel

int blocks_for(std::size_t items) {
  return static_cast<int>((items + kThreads - 1) / kThreads);
}

__device__ float warp_sum(float value) {
  for (int offset = 16; offset > 0; offset /= 2)
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

__global__ void gather_bf16_kernel(const __nv_bfloat16* table, int width, const std::int32_t* ids,
                                   int count, float* out) {
  const std::size_t index = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (index >= static_cast<std::size_t>(count) * width) return;
  const std::size_t token = index / width;
  const std::size_t column = index % width;
  out[index] = __bfloat162float(table[static_cast<std::size_t>(ids[token]) * width + column]);
}

__global__ void gather_f32_kernel(const float* table, int width, const std::int32_t* ids, int count,
                                  float* out) {
  const std::size_t index = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (index >= static_cast<std::size_t>(count) * width) return;
  const std::size_t token = index / width;
  const std::size_t column = index % width;
  out[index] = table[static_cast<std::size_t>(ids[token]) * width + column];
}

__global__ void gather_affine_kernel(const std::uint32_t* codes, const std::uint16_t* scales,
                                     const std::uint16_t* biases, int width, int bits,
                                     int group_size, const std::int32_t* ids, int count,
                                     float* out) {
  const std::size_t index = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (index >= static_cast<std::size_t>(count) * width) return;
  const std::size_t row = static_cast<std::size_t>(ids[index / width]);
  const int column = static_cast<int>(index % width);
  const std::size_t words_per_row = static_cast<std::size_t>(width) * bits / 32;
  const std::uint32_t* row_codes = codes + row * words_per_row;
  const int bit = column * bits;
  const int shift = bit % 32;
  std::uint32_t code = row_codes[bit / 32] >> shift;
  if (shift + bits > 32) code |= row_codes[bit / 32 + 1] << (32 - shift);
  code &= (1u << bits) - 1u;
  const std::size_t group = row * (width / group_size) + column / group_size;
  const float scale = __bfloat162float(__ushort_as_bfloat16(scales[group]));
  const float bias = __bfloat162float(__ushort_as_bfloat16(biases[group]));
  out[index] = scale * static_cast<float>(code) + bias;
}

__global__ void rms_norm_kernel(const float* x, int dim, const float* weight, float eps,
                                float* out) {
  const float* in_row = x + static_cast<std::size_t>(blockIdx.x) * dim;
  float* out_row = out + static_cast<std::size_t>(blockIdx.x) * dim;
  float sum = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) sum += in_row[i] * in_row[i];
  __shared__ float partial[kThreads / 32];
  sum = warp_sum(sum);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = sum;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < static_cast<int>(blockDim.x) / 32; ++w) total += partial[w];
  const float inverse_rms = 1.0f / sqrtf(total / static_cast<float>(dim) + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x)
    out_row[i] = weight[i] * (in_row[i] * inverse_rms);
}

__global__ void rope_kernel(float* x, int rows, int row_stride, int heads, int head_dim,
                            const float* inverse_frequencies, const int* first_position_at) {
  const int first_position = *first_position_at;
  const int half = head_dim / 2;
  const std::size_t index = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (index >= static_cast<std::size_t>(rows) * heads * half) return;
  const int i = static_cast<int>(index % half);
  const int head = static_cast<int>(index / half % heads);
  const int row = static_cast<int>(index / half / heads);
  // float32 angle like transformers, its cosine and sine in double like the CPU path.
  const float angle = static_cast<float>(first_position + row) * inverse_frequencies[i];
  const float cosine = static_cast<float>(cos(static_cast<double>(angle)));
  const float sine = static_cast<float>(sin(static_cast<double>(angle)));
  float* pair = x + static_cast<std::size_t>(row) * row_stride + head * head_dim;
  const float first = pair[i];
  const float second = pair[i + half];
  pair[i] = first * cosine - second * sine;
  pair[i + half] = second * cosine + first * sine;
}

__global__ void store_kv_kernel(const float* k, const float* v, int rows, int row_stride,
                                int kv_width, const int* first_position_at, float* k_cache,
                                float* v_cache) {
  const int first_position = *first_position_at;
  const std::size_t index = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (index >= static_cast<std::size_t>(rows) * kv_width) return;
  const std::size_t row = index / kv_width;
  const std::size_t column = index % kv_width;
  const std::size_t slot = (first_position + row) * kv_width + column;
  k_cache[slot] = k[row * row_stride + column];
  v_cache[slot] = v[row * row_stride + column];
}

__device__ int first_visible_key(const AttentionShape& shape, int position) {
  return shape.sliding_window > 0 ? max(0, position - shape.sliding_window + 1) : 0;
}

// One online-softmax step: running max m, denominator l, accumulator acc[D].
template <int D>
__device__ void online_softmax_step(float score, const float* value_row, int lane, float& m,
                                    float& l, float (&acc)[D]) {
  const float new_max = fmaxf(m, score);
  const float correction = m == -INFINITY ? 0.0f : expf(m - new_max);
  const float weight = expf(score - new_max);
  l = l * correction + weight;
#pragma unroll
  for (int i = 0; i < D; ++i) acc[i] = acc[i] * correction + weight * value_row[lane + 32 * i];
  m = new_max;
}

// Decode attention: block (split, head, query); its 4 warps stride over the split's keys, each
// with its own online softmax; the block merges them into one partial (max, sum, acc[head_dim]).
template <int D>
__global__ void attention_split_kernel(const float* q, int q_stride, const int* first_position_at,
                                       const float* k_cache, const float* v_cache,
                                       AttentionShape shape, int splits, float scale,
                                       float* partials) {
  const int split = blockIdx.x;
  const int head = blockIdx.y;
  const int row = blockIdx.z;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int head_dim = shape.head_dim;
  const int kv_width = shape.kv_heads * head_dim;
  const int kv_head = head / (shape.heads / shape.kv_heads);
  const int position = *first_position_at + row;
  const int begin = first_visible_key(shape, position) + split * kSplitKeys;
  const int end = min(begin + kSplitKeys, position + 1);

  const float* query = q + static_cast<std::size_t>(row) * q_stride + head * head_dim;
  float scaled_query[D];
  float acc[D];
#pragma unroll
  for (int i = 0; i < D; ++i) {
    scaled_query[i] = query[lane + 32 * i] * scale;
    acc[i] = 0.0f;
  }
  float m = -INFINITY;
  float l = 0.0f;
  for (int key = begin + warp; key < end; key += kWarps) {
    const std::size_t offset = static_cast<std::size_t>(key) * kv_width + kv_head * head_dim;
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < D; ++i) dot += scaled_query[i] * k_cache[offset + lane + 32 * i];
    online_softmax_step<D>(warp_sum(dot), v_cache + offset, lane, m, l, acc);
  }

  __shared__ float warp_max[kWarps];
  __shared__ float warp_sum_[kWarps];
  __shared__ float warp_acc[kWarps][256];
  if (lane == 0) {
    warp_max[warp] = m;
    warp_sum_[warp] = l;
  }
#pragma unroll
  for (int i = 0; i < D; ++i) warp_acc[warp][lane + 32 * i] = acc[i];
  __syncthreads();
  float block_max = -INFINITY;
  for (int w = 0; w < kWarps; ++w) block_max = fmaxf(block_max, warp_max[w]);
  float* out = partials + ((static_cast<std::size_t>(row) * shape.heads + head) * splits + split) *
                              (head_dim + 2);
  for (int t = threadIdx.x; t < head_dim; t += blockDim.x) {
    float total = 0.0f;
    float value = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      if (warp_max[w] == -INFINITY) continue;
      const float weight = expf(warp_max[w] - block_max);
      total += warp_sum_[w] * weight;
      value += warp_acc[w][t] * weight;
    }
    out[2 + t] = value;
    if (t == 0) {
      out[0] = block_max;
      out[1] = total;
    }
  }
}

// Merges the splits' partial softmaxes of block (head, query) into out.
__global__ void attention_combine_kernel(const float* partials, int splits, int heads, int head_dim,
                                         float* out) {
  const int head = blockIdx.x;
  const int row = blockIdx.y;
  const float* first =
      partials + (static_cast<std::size_t>(row) * heads + head) * splits * (head_dim + 2);
  float global_max = -INFINITY;
  for (int s = 0; s < splits; ++s) global_max = fmaxf(global_max, first[s * (head_dim + 2)]);
  for (int t = threadIdx.x; t < head_dim; t += blockDim.x) {
    float total = 0.0f;
    float value = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float* part = first + s * (head_dim + 2);
      if (part[0] == -INFINITY) continue;
      const float weight = expf(part[0] - global_max);
      total += part[1] * weight;
      value += part[2 + t] * weight;
    }
    out[(static_cast<std::size_t>(row) * heads + head) * head_dim + t] = value / total;
  }
}

// Prompt attention: block (query tile, head); 4 warps x 4 queries share each tile of keys and
// values staged in shared memory; one online softmax per query.
template <int D>
__global__ void attention_tiled_kernel(const float* q, int count, int q_stride,
                                       const int* first_position_at, const float* k_cache,
                                       const float* v_cache, AttentionShape shape, float scale,
                                       float* out) {
  extern __shared__ float tile[];
  const int first_position = *first_position_at;
  const int head = blockIdx.y;
  const int first_row = blockIdx.x * kWarps * kQueriesPerWarp;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int head_dim = shape.head_dim;
  const int kv_width = shape.kv_heads * head_dim;
  const int kv_head = head / (shape.heads / shape.kv_heads);
  const int tile_keys = kTileFloats / head_dim;
  float* tile_keys_data = tile;
  float* tile_values = tile + kTileFloats;

  float scaled_query[kQueriesPerWarp][D];
  float acc[kQueriesPerWarp][D];
  float m[kQueriesPerWarp];
  float l[kQueriesPerWarp];
  int position[kQueriesPerWarp];
  int visible_from[kQueriesPerWarp];
#pragma unroll
  for (int j = 0; j < kQueriesPerWarp; ++j) {
    const int row = min(first_row + warp * kQueriesPerWarp + j, count - 1);
    // Rows past the end repeat the last one (-1 marks them: computed, never written).
    position[j] = first_row + warp * kQueriesPerWarp + j < count ? first_position + row : -1;
    visible_from[j] = first_visible_key(shape, first_position + row);
    const float* query = q + static_cast<std::size_t>(row) * q_stride + head * head_dim;
#pragma unroll
    for (int i = 0; i < D; ++i) {
      scaled_query[j][i] = query[lane + 32 * i] * scale;
      acc[j][i] = 0.0f;
    }
    m[j] = -INFINITY;
    l[j] = 0.0f;
  }
  const int last_row = min(first_row + kWarps * kQueriesPerWarp, count) - 1;
  const int last_key = first_position + last_row;
  const int first_key = first_visible_key(shape, first_position + first_row);
  for (int tile_start = first_key; tile_start <= last_key; tile_start += tile_keys) {
    const int keys = min(tile_keys, last_key + 1 - tile_start);
    __syncthreads();
    for (int index = threadIdx.x; index < keys * head_dim; index += blockDim.x) {
      const std::size_t offset =
          static_cast<std::size_t>(tile_start + index / head_dim) * kv_width + kv_head * head_dim +
          index % head_dim;
      tile_keys_data[index] = k_cache[offset];
      tile_values[index] = v_cache[offset];
    }
    __syncthreads();
    for (int key = 0; key < keys; ++key) {
      const int key_position = tile_start + key;
      const float* key_row = tile_keys_data + key * head_dim;
#pragma unroll
      for (int j = 0; j < kQueriesPerWarp; ++j) {
        const int seen_until = position[j] < 0 ? last_key : position[j];
        if (key_position > seen_until || key_position < visible_from[j]) continue;
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < D; ++i) dot += scaled_query[j][i] * key_row[lane + 32 * i];
        online_softmax_step<D>(warp_sum(dot), tile_values + key * head_dim, lane, m[j], l[j],
                               acc[j]);
      }
    }
  }
  const int out_stride = shape.heads * head_dim;
#pragma unroll
  for (int j = 0; j < kQueriesPerWarp; ++j) {
    if (position[j] < 0) continue;
    const int row = first_row + warp * kQueriesPerWarp + j;
    float* result = out + static_cast<std::size_t>(row) * out_stride + head * head_dim;
#pragma unroll
    for (int i = 0; i < D; ++i) result[lane + 32 * i] = acc[j][i] / l[j];
  }
}

template <int D>
void launch_attention(const float* q, int count, int q_stride, const int* first_position,
                      int max_keys, const float* k_cache, const float* v_cache,
                      const AttentionShape& shape, float* workspace, float* out,
                      cudaStream_t stream) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  if (count >= kTiledMinQueries) {
    const dim3 grid((count + kWarps * kQueriesPerWarp - 1) / (kWarps * kQueriesPerWarp),
                    shape.heads);
    const std::size_t shared = 2 * kTileFloats * sizeof(float);
    attention_tiled_kernel<D><<<grid, kWarps * 32, shared, stream>>>(
        q, count, q_stride, first_position, k_cache, v_cache, shape, scale, out);
    UQ_CUDA_CHECK_LAUNCH("attention_tiled_kernel");
    return;
  }
  int visible = max_keys;
  if (shape.sliding_window > 0) visible = std::min(visible, shape.sliding_window);
  const int splits = (visible + kSplitKeys - 1) / kSplitKeys;
  attention_split_kernel<D><<<dim3(splits, shape.heads, count), kWarps * 32, 0, stream>>>(
      q, q_stride, first_position, k_cache, v_cache, shape, splits, scale, workspace);
  UQ_CUDA_CHECK_LAUNCH("attention_split_kernel");
  attention_combine_kernel<<<dim3(shape.heads, count), shape.head_dim, 0, stream>>>(
      workspace, splits, shape.heads, shape.head_dim, out);
  UQ_CUDA_CHECK_LAUNCH("attention_combine_kernel");
}

__global__ void swiglu_kernel(const float* gate_up, int rows, int width, float* out) {
  const std::size_t index = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (index >= static_cast<std::size_t>(rows) * width) return;
  const std::size_t row = index / width;
  const std::size_t column = index % width;
  const float gate = gate_up[row * 2 * width + column];
  const float up = gate_up[row * 2 * width + width + column];
  out[index] = gate / (1.0f + expf(-gate)) * up;
}

__global__ void split_bf16_kernel(const float* x, std::size_t elements, __nv_bfloat16* out) {
  const std::size_t index = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (index >= elements) return;
  const float value = x[index];
  const __nv_bfloat16 high = __float2bfloat16_rn(value);
  out[index] = high;
  out[elements + index] = __float2bfloat16_rn(value - __bfloat162float(high));
}

__global__ void linear_epilogue_kernel(const float* a, const float* b, const float* bias, int rows,
                                       int width, float* y, int y_stride, int column,
                                       bool accumulate) {
  const std::size_t index = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (index >= static_cast<std::size_t>(rows) * width) return;
  const std::size_t row = index / width;
  const int o = static_cast<int>(index % width);
  float value = a[index];
  if (b != nullptr) value += b[index];
  if (bias != nullptr) value += bias[o];
  float& target = y[row * y_stride + column + o];
  target = accumulate ? target + value : value;
}

__global__ void argmax_kernel(const float* values, int count, std::int32_t* result) {
  __shared__ float best_values[1024];
  __shared__ int best_indices[1024];
  float best = -INFINITY;
  int best_index = count;  // larger than any index: loses every tie
  for (int i = threadIdx.x; i < count; i += blockDim.x) {
    if (best_index == count || values[i] > best) {  // strictly greater: first index wins
      best = values[i];
      best_index = i;
    }
  }
  best_values[threadIdx.x] = best;
  best_indices[threadIdx.x] = best_index;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride) {
      const float other = best_values[threadIdx.x + stride];
      const int other_index = best_indices[threadIdx.x + stride];
      if (other > best_values[threadIdx.x] ||
          (other == best_values[threadIdx.x] && other_index < best_indices[threadIdx.x])) {
        best_values[threadIdx.x] = other;
        best_indices[threadIdx.x] = other_index;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) *result = best_indices[0];
}

}  // namespace

void gather_rows(const __nv_bfloat16* table, int width, const std::int32_t* ids, int count,
                 float* out, cudaStream_t stream) {
  gather_bf16_kernel<<<blocks_for(static_cast<std::size_t>(count) * width), kThreads, 0, stream>>>(
      table, width, ids, count, out);
  UQ_CUDA_CHECK_LAUNCH("gather_bf16_kernel");
}

void gather_rows(const float* table, int width, const std::int32_t* ids, int count, float* out,
                 cudaStream_t stream) {
  gather_f32_kernel<<<blocks_for(static_cast<std::size_t>(count) * width), kThreads, 0, stream>>>(
      table, width, ids, count, out);
  UQ_CUDA_CHECK_LAUNCH("gather_f32_kernel");
}

void gather_rows(const AffineDeviceWeight& table, const std::int32_t* ids, int count, float* out,
                 cudaStream_t stream) {
  const int width = table.in();
  gather_affine_kernel<<<blocks_for(static_cast<std::size_t>(count) * width), kThreads, 0,
                         stream>>>(table.codes(), table.scales(), table.biases(), width,
                                   table.bits(), table.group_size(), ids, count, out);
  UQ_CUDA_CHECK_LAUNCH("gather_affine_kernel");
}

void rms_norm(const float* x, int rows, int dim, const float* weight, float eps, float* out,
              cudaStream_t stream) {
  rms_norm_kernel<<<rows, kThreads, 0, stream>>>(x, dim, weight, eps, out);
  UQ_CUDA_CHECK_LAUNCH("rms_norm_kernel");
}

void rope(float* x, int rows, int row_stride, int heads, int head_dim,
          const float* inverse_frequencies, const int* first_position, cudaStream_t stream) {
  const std::size_t items = static_cast<std::size_t>(rows) * heads * (head_dim / 2);
  rope_kernel<<<blocks_for(items), kThreads, 0, stream>>>(x, rows, row_stride, heads, head_dim,
                                                          inverse_frequencies, first_position);
  UQ_CUDA_CHECK_LAUNCH("rope_kernel");
}

void store_kv(const float* k, const float* v, int rows, int row_stride, int kv_width,
              const int* first_position, float* k_cache, float* v_cache, cudaStream_t stream) {
  store_kv_kernel<<<blocks_for(static_cast<std::size_t>(rows) * kv_width), kThreads, 0, stream>>>(
      k, v, rows, row_stride, kv_width, first_position, k_cache, v_cache);
  UQ_CUDA_CHECK_LAUNCH("store_kv_kernel");
}

std::size_t attention_workspace_floats(const AttentionShape& shape, int count, int keys) {
  if (count >= kTiledMinQueries) return 0;
  const std::size_t splits = (static_cast<std::size_t>(keys) + kSplitKeys - 1) / kSplitKeys;
  return splits * static_cast<std::size_t>(count) * shape.heads * (shape.head_dim + 2);
}

void attention(const float* q, int count, int q_stride, const int* first_position, int max_keys,
               const float* k_cache, const float* v_cache, const AttentionShape& shape,
               float* workspace, float* out, cudaStream_t stream) {
  if (shape.head_dim % 32 != 0 || shape.head_dim < 32 || shape.head_dim > 256) {
    fail("cuda attention: head_dim ", shape.head_dim, " is not a multiple of 32 in [32, 256]");
  }
  if (shape.kv_heads < 1 || shape.heads % shape.kv_heads != 0) {
    fail("cuda attention: ", shape.heads, " heads are not a multiple of ", shape.kv_heads,
         " key/value heads");
  }
  switch (shape.head_dim / 32) {
    case 1:
      return launch_attention<1>(q, count, q_stride, first_position, max_keys, k_cache, v_cache,
                                 shape, workspace, out, stream);
    case 2:
      return launch_attention<2>(q, count, q_stride, first_position, max_keys, k_cache, v_cache,
                                 shape, workspace, out, stream);
    case 3:
      return launch_attention<3>(q, count, q_stride, first_position, max_keys, k_cache, v_cache,
                                 shape, workspace, out, stream);
    case 4:
      return launch_attention<4>(q, count, q_stride, first_position, max_keys, k_cache, v_cache,
                                 shape, workspace, out, stream);
    case 5:
      return launch_attention<5>(q, count, q_stride, first_position, max_keys, k_cache, v_cache,
                                 shape, workspace, out, stream);
    case 6:
      return launch_attention<6>(q, count, q_stride, first_position, max_keys, k_cache, v_cache,
                                 shape, workspace, out, stream);
    case 7:
      return launch_attention<7>(q, count, q_stride, first_position, max_keys, k_cache, v_cache,
                                 shape, workspace, out, stream);
    default:
      return launch_attention<8>(q, count, q_stride, first_position, max_keys, k_cache, v_cache,
                                 shape, workspace, out, stream);
  }
}

void swiglu(const float* gate_up, int rows, int width, float* out, cudaStream_t stream) {
  swiglu_kernel<<<blocks_for(static_cast<std::size_t>(rows) * width), kThreads, 0, stream>>>(
      gate_up, rows, width, out);
  UQ_CUDA_CHECK_LAUNCH("swiglu_kernel");
}

void split_bf16(const float* x, int rows, int width, __nv_bfloat16* out, cudaStream_t stream) {
  const std::size_t elements = static_cast<std::size_t>(rows) * width;
  split_bf16_kernel<<<blocks_for(elements), kThreads, 0, stream>>>(x, elements, out);
  UQ_CUDA_CHECK_LAUNCH("split_bf16_kernel");
}

void linear_epilogue(const float* a, const float* b, const float* bias, int rows, int width,
                     float* y, int y_stride, int column, bool accumulate, cudaStream_t stream) {
  linear_epilogue_kernel<<<blocks_for(static_cast<std::size_t>(rows) * width), kThreads, 0,
                           stream>>>(a, b, bias, rows, width, y, y_stride, column, accumulate);
  UQ_CUDA_CHECK_LAUNCH("linear_epilogue_kernel");
}

void argmax(const float* values, int count, std::int32_t* result, cudaStream_t stream) {
  argmax_kernel<<<1, 1024, 0, stream>>>(values, count, result);
  UQ_CUDA_CHECK_LAUNCH("argmax_kernel");
}

}  // namespace uq::cuda
