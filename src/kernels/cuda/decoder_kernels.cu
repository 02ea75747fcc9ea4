#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/decoder_kernels.hpp"
#include "kernels/cuda/pdl_launch.hpp"
#include "kernels/cuda/warp_reduce.cuh"

namespace uq::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kArgmaxBlocks = 128;
constexpr int kWarps = 4;  // attention blocks: 4 warps
// Decode attention: a block stages kDecodeTileFloats of keys and of values (4096 / head_dim
// keys: 32 at head_dim 128) for up to kGroupChunk query heads sharing their kv head.
constexpr int kDecodeThreads = 256;
constexpr int kDecodeTileFloats = 4096;
constexpr int kMaxHeadDim = 256;
constexpr int kMaxSplitKeys = kDecodeTileFloats / 32;
constexpr int kGroupChunk = 8;
constexpr int kCombineChunk = 1024;  // splits whose weights the combine holds at once
// Combine: one block per (head, query); its threads are kCombineThreads / head_dim lane groups
// (8 at head_dim 128), each summing every 8th split: a short chain of L2 reads per thread.
constexpr int kCombineThreads = 1024;
constexpr int kQueriesPerWarp = 4;   // prompt attention: a warp keeps 4 queries
constexpr int kTileFloats = 4096;    // prompt attention: key tile = kTileFloats / head_dim keys
constexpr int kTiledMinQueries = 8;  // from this many queries on, the tiled kernel

int blocks_for(std::size_t items) {
  return static_cast<int>((items + kThreads - 1) / kThreads);
}

__global__ void gather_bf16_kernel(const __nv_bfloat16* table, int width, const std::int32_t* ids,
                                   int count, float* out) {
  pdl_launch_dependents();
  pdl_wait();
  const std::size_t index = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (index >= static_cast<std::size_t>(count) * width) return;
  const std::size_t token = index / width;
  const std::size_t column = index % width;
  out[index] = __bfloat162float(table[static_cast<std::size_t>(ids[token]) * width + column]);
}

__global__ void gather_f32_kernel(const float* table, int width, const std::int32_t* ids, int count,
                                  float* out) {
  pdl_launch_dependents();
  pdl_wait();
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
  pdl_launch_dependents();
  pdl_wait();
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

// One block per row, up to 1024 threads: a row of 4096 is 4 loads per thread, issued together
// (a block of 256 walking 16 dependent iterations took ~12 us on an H200).
__global__ void rms_norm_kernel(const float* x, int dim, const float* weight, float eps,
                                float* out) {
  pdl_launch_dependents();
  pdl_wait();
  const float* in_row = x + static_cast<std::size_t>(blockIdx.x) * dim;
  float* out_row = out + static_cast<std::size_t>(blockIdx.x) * dim;
  float sum = 0.0f;
#pragma unroll 4
  for (int i = threadIdx.x; i < dim; i += blockDim.x) sum += in_row[i] * in_row[i];
  __shared__ float partial[32];
  sum = warp_sum(sum);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = sum;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < static_cast<int>(blockDim.x) / 32; ++w) total += partial[w];
  const float inverse_rms = 1.0f / sqrtf(total / static_cast<float>(dim) + eps);
#pragma unroll 4
  for (int i = threadIdx.x; i < dim; i += blockDim.x)
    out_row[i] = weight[i] * (in_row[i] * inverse_rms);
}

// Item (row, head, i < head_dim / 2) rotates a pair of a query or key head; items past those
// copy one value. Query heads are rotated in place; keys and values go to the cache.
__global__ void rope_store_kv_kernel(float* qkv, int rows, int row_stride, int heads, int kv_heads,
                                     int head_dim, const float* inverse_frequencies,
                                     const int* first_position_at, float* k_cache, float* v_cache) {
  pdl_launch_dependents();
  pdl_wait();
  const int first_position = *first_position_at;
  const int half = head_dim / 2;
  const int kv_width = kv_heads * head_dim;
  const std::size_t rotations = static_cast<std::size_t>(rows) * (heads + kv_heads) * half;
  const std::size_t index = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (index >= rotations) {
    const std::size_t copy = index - rotations;
    if (copy >= static_cast<std::size_t>(rows) * kv_width) return;
    const std::size_t row = copy / kv_width;
    const std::size_t column = copy % kv_width;
    v_cache[(first_position + row) * kv_width + column] =
        qkv[row * row_stride + static_cast<std::size_t>(heads + kv_heads) * head_dim + column];
    return;
  }
  const int i = static_cast<int>(index % half);
  const int head = static_cast<int>(index / half % (heads + kv_heads));
  const int row = static_cast<int>(index / half / (heads + kv_heads));
  // float32 angle like transformers, its cosine and sine in double like the CPU path.
  const float angle = static_cast<float>(first_position + row) * inverse_frequencies[i];
  const float cosine = static_cast<float>(cos(static_cast<double>(angle)));
  const float sine = static_cast<float>(sin(static_cast<double>(angle)));
  float* pair = qkv + static_cast<std::size_t>(row) * row_stride + head * head_dim;
  const float first = pair[i];
  const float second = pair[i + half];
  float* target = pair;
  if (head >= heads) {
    target = k_cache + static_cast<std::size_t>(first_position + row) * kv_width +
             (head - heads) * head_dim;
  }
  target[i] = first * cosine - second * sine;
  target[i + half] = second * cosine + first * sine;
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

// Decode attention, bandwidth-shaped: block (split of keys, kv head [, chunk of its query
// heads], query). The split's keys and values are staged in shared memory with coalesced
// 16-byte loads, once for all query heads of the GQA group; scores of every (head, key) pair are
// computed in parallel, then a block-local softmax per head, then P.V from shared memory. The
// block writes one partial (max, sum, acc[head_dim]) per head; the combine kernel merges them.
// Blocks whose split starts past the query's position leave at once (a replayed decode graph
// launches enough splits for the cache's capacity).
__global__ void __launch_bounds__(kDecodeThreads)
    attention_decode_split_kernel(const float* q, int q_stride, const int* first_position_at,
                                  const float* k_cache, const float* v_cache, AttentionShape shape,
                                  int splits, float scale, float* partials) {
  __shared__ float4 key_tile[kDecodeTileFloats / 4];
  __shared__ float4 value_tile[kDecodeTileFloats / 4];
  __shared__ float4 query_tile[kGroupChunk * kMaxHeadDim / 4];
  __shared__ float probabilities[kGroupChunk * kMaxSplitKeys];
  __shared__ float head_max[kGroupChunk];
  __shared__ float head_sum[kGroupChunk];

  pdl_launch_dependents();
  pdl_wait();
  const int head_dim = shape.head_dim;
  const int split_keys = kDecodeTileFloats / head_dim;
  const int row = blockIdx.z;
  const int position = *first_position_at + row;
  const int first_key = first_visible_key(shape, position) + blockIdx.x * split_keys;
  if (first_key > position) return;  // past the last key: the combine never reads this split
  const int keys = min(split_keys, position + 1 - first_key);
  const int group = shape.heads / shape.kv_heads;
  const int chunks = (group + kGroupChunk - 1) / kGroupChunk;
  const int kv_head = blockIdx.y / chunks;
  const int first_head = kv_head * group + (blockIdx.y % chunks) * kGroupChunk;
  const int heads = min(kGroupChunk, (kv_head + 1) * group - first_head);
  const int vectors = head_dim / 4;  // float4 per key row
  const int kv_width = shape.kv_heads * head_dim;

  for (int i = threadIdx.x; i < keys * vectors; i += blockDim.x) {
    const std::size_t offset =
        static_cast<std::size_t>(first_key + i / vectors) * kv_width + kv_head * head_dim;
    key_tile[i] = __ldg(reinterpret_cast<const float4*>(k_cache + offset) + i % vectors);
    value_tile[i] = __ldg(reinterpret_cast<const float4*>(v_cache + offset) + i % vectors);
  }
  float* query = reinterpret_cast<float*>(query_tile);
  for (int i = threadIdx.x; i < heads * head_dim; i += blockDim.x) {
    query[i] = q[static_cast<std::size_t>(row) * q_stride + first_head * head_dim + i] * scale;
  }
  __syncthreads();

  // Item (head h, key j). Consecutive lanes take consecutive keys and start their walk along
  // head_dim at column j: the 16-byte reads of a quarter warp fall in distinct banks.
  for (int i = threadIdx.x; i < heads * split_keys; i += blockDim.x) {
    const int h = i / split_keys;
    const int j = i % split_keys;
    float score = -INFINITY;
    if (j < keys) {
      const float4* key_row = key_tile + j * vectors;
      const float4* query_row = query_tile + h * vectors;
      float dot[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      int c = j % vectors;
      for (int n = 0; n < vectors; ++n) {
        const float4 k4 = key_row[c];
        const float4 q4 = query_row[c];
        dot[0] = fmaf(k4.x, q4.x, dot[0]);
        dot[1] = fmaf(k4.y, q4.y, dot[1]);
        dot[2] = fmaf(k4.z, q4.z, dot[2]);
        dot[3] = fmaf(k4.w, q4.w, dot[3]);
        c = c + 1 == vectors ? 0 : c + 1;
      }
      score = (dot[0] + dot[1]) + (dot[2] + dot[3]);
    }
    probabilities[h * kMaxSplitKeys + j] = score;
  }
  __syncthreads();

  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  for (int h = warp; h < heads; h += kDecodeThreads / 32) {
    float* p = probabilities + h * kMaxSplitKeys;
    float m = -INFINITY;
    for (int j = lane; j < keys; j += 32) m = fmaxf(m, p[j]);
    m = warp_max(m);  // finite: the split holds at least one key
    float l = 0.0f;
    for (int j = lane; j < keys; j += 32) {
      const float weight = expf(p[j] - m);
      p[j] = weight;
      l += weight;
    }
    l = warp_sum(l);
    if (lane == 0) {
      head_max[h] = m;
      head_sum[h] = l;
    }
  }
  __syncthreads();

  const float* values = reinterpret_cast<const float*>(value_tile);
  for (int i = threadIdx.x; i < heads * head_dim; i += blockDim.x) {
    const int h = i / head_dim;
    const int d = i % head_dim;
    const float* p = probabilities + h * kMaxSplitKeys;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    int j = 0;
    for (; j + 4 <= keys; j += 4) {
#pragma unroll
      for (int u = 0; u < 4; ++u) acc[u] = fmaf(p[j + u], values[(j + u) * head_dim + d], acc[u]);
    }
    for (; j < keys; ++j) acc[0] = fmaf(p[j], values[j * head_dim + d], acc[0]);
    float* out =
        partials +
        ((static_cast<std::size_t>(row) * shape.heads + first_head + h) * splits + blockIdx.x) *
            (head_dim + 2);
    out[2 + d] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    if (d == 0) {
      out[0] = head_max[h];
      out[1] = head_sum[h];
    }
  }
}

// Merges the partial softmaxes of the splits that hold keys of block (head, query) into out.
// Threads (column d, lane group g) sum every groups-th split, in chunks of kCombineChunk splits
// whose weights exp(max_s - running max) are computed once into shared memory.
__global__ void __launch_bounds__(kCombineThreads)
    attention_combine_kernel(const float* partials, const int* first_position_at,
                             AttentionShape shape, int splits, float* out) {
  __shared__ float weights[kCombineChunk];
  __shared__ float reduce[kCombineThreads];
  __shared__ float chunk_max;
  pdl_launch_dependents();
  pdl_wait();
  const int head = blockIdx.x;
  const int row = blockIdx.y;
  const int head_dim = shape.head_dim;
  const int split_keys = kDecodeTileFloats / head_dim;
  const int position = *first_position_at + row;
  const int active = (position - first_visible_key(shape, position)) / split_keys + 1;
  const float* first =
      partials + (static_cast<std::size_t>(row) * shape.heads + head) * splits * (head_dim + 2);
  const int d = threadIdx.x % head_dim;
  const int lane_group = threadIdx.x / head_dim;
  const int lane_groups = kCombineThreads / head_dim;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;

  float running_max = -INFINITY;
  float total = 0.0f;  // the softmax denominator, kept by every thread alike
  float value = 0.0f;
  for (int chunk = 0; chunk < active; chunk += kCombineChunk) {
    const int count = min(kCombineChunk, active - chunk);
    float m = -INFINITY;
    for (int s = threadIdx.x; s < count; s += blockDim.x)
      m = fmaxf(m, first[static_cast<std::size_t>(chunk + s) * (head_dim + 2)]);
    m = warp_max(m);
    if (lane == 0) reduce[warp] = m;
    __syncthreads();
    if (threadIdx.x == 0) {
      float block_max = -INFINITY;
      for (int w = 0; w < kCombineThreads / 32; ++w) block_max = fmaxf(block_max, reduce[w]);
      chunk_max = block_max;
    }
    __syncthreads();
    const float new_max = fmaxf(running_max, chunk_max);
    const float correction = running_max == -INFINITY ? 0.0f : expf(running_max - new_max);
    value *= correction;
    total *= correction;
    running_max = new_max;
    float weighted_sum = 0.0f;
    for (int s = threadIdx.x; s < count; s += blockDim.x) {
      const float* part = first + static_cast<std::size_t>(chunk + s) * (head_dim + 2);
      const float weight = expf(part[0] - new_max);
      weights[s] = weight;
      weighted_sum = fmaf(weight, part[1], weighted_sum);
    }
    weighted_sum = warp_sum(weighted_sum);
    __syncthreads();  // every thread has read chunk_max and reduce[] above
    if (lane == 0) reduce[warp] = weighted_sum;
    __syncthreads();
    for (int w = 0; w < kCombineThreads / 32; ++w) total += reduce[w];
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    int s = lane_group;
    for (; s + 3 * lane_groups < count; s += 4 * lane_groups) {
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const float* part =
            first + static_cast<std::size_t>(chunk + s + u * lane_groups) * (head_dim + 2);
        acc[u] = fmaf(weights[s + u * lane_groups], part[2 + d], acc[u]);
      }
    }
    for (; s < count; s += lane_groups) {
      const float* part = first + static_cast<std::size_t>(chunk + s) * (head_dim + 2);
      acc[0] = fmaf(weights[s], part[2 + d], acc[0]);
    }
    value += (acc[0] + acc[1]) + (acc[2] + acc[3]);
    __syncthreads();  // weights and chunk_max are rewritten by the next chunk
  }
  if (lane_group < lane_groups) reduce[threadIdx.x] = value;
  __syncthreads();
  if (lane_group == 0) {
    float result = 0.0f;
    for (int g = 0; g < lane_groups; ++g) result += reduce[g * head_dim + d];
    out[(static_cast<std::size_t>(row) * shape.heads + head) * head_dim + d] = result / total;
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
  pdl_launch_dependents();
  pdl_wait();
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

// Splits of a decode attention over at most max_keys keys (or the window's).
int decode_splits(const AttentionShape& shape, int max_keys) {
  int visible = max_keys;
  if (shape.sliding_window > 0) visible = std::min(visible, shape.sliding_window);
  const int split_keys = kDecodeTileFloats / shape.head_dim;
  return (visible + split_keys - 1) / split_keys;
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
    launch_pdl("attention_tiled_kernel", attention_tiled_kernel<D>, grid, kWarps * 32, shared,
               stream, q, count, q_stride, first_position, k_cache, v_cache, shape, scale, out);
    return;
  }
  const int splits = decode_splits(shape, max_keys);
  const int group = shape.heads / shape.kv_heads;
  const int chunks = (group + kGroupChunk - 1) / kGroupChunk;
  launch_pdl("attention_decode_split_kernel", attention_decode_split_kernel,
             dim3(splits, shape.kv_heads * chunks, count), kDecodeThreads, 0, stream, q, q_stride,
             first_position, k_cache, v_cache, shape, splits, scale, workspace);
  launch_pdl("attention_combine_kernel", attention_combine_kernel, dim3(shape.heads, count),
             kCombineThreads, 0, stream, workspace, first_position, shape, splits, out);
}

__global__ void swiglu_kernel(const float* gate_up, int rows, int width, float* out) {
  pdl_launch_dependents();
  pdl_wait();
  const std::size_t index = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (index >= static_cast<std::size_t>(rows) * width) return;
  const std::size_t row = index / width;
  const std::size_t column = index % width;
  const float gate = gate_up[row * 2 * width + column];
  const float up = gate_up[row * 2 * width + width + column];
  out[index] = gate / (1.0f + expf(-gate)) * up;
}

__global__ void split_bf16_kernel(const float* x, std::size_t elements, __nv_bfloat16* out) {
  pdl_launch_dependents();
  pdl_wait();
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
  pdl_launch_dependents();
  pdl_wait();
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

// Whether candidate (value, index) beats the best so far; index kNoIndex is no candidate, and
// the first index wins ties.
constexpr int kNoIndex = 0x7fffffff;
__device__ bool beats(float value, int index, float best, int best_index) {
  if (index == kNoIndex) return false;
  return best_index == kNoIndex || value > best || (value == best && index < best_index);
}

// Block-wide (value, index) reduction; thread 0 returns the result.
__device__ void block_argmax(float& best, int& best_index) {
  __shared__ float values[kThreads];
  __shared__ int indices[kThreads];
  values[threadIdx.x] = best;
  indices[threadIdx.x] = best_index;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride) {
      const float other = values[threadIdx.x + stride];
      const int other_index = indices[threadIdx.x + stride];
      if (beats(other, other_index, values[threadIdx.x], indices[threadIdx.x])) {
        values[threadIdx.x] = other;
        indices[threadIdx.x] = other_index;
      }
    }
    __syncthreads();
  }
  best = values[0];
  best_index = indices[0];
}

// Stage 1: block b takes the b-th slice of the values (a single block over 128256 logits was
// latency-bound at ~45 us); stage 2 reduces the blocks' winners.
__global__ void argmax_partial_kernel(const float* values, int count, float* best_values,
                                      int* best_indices) {
  pdl_launch_dependents();
  pdl_wait();
  const int slice = (count + gridDim.x - 1) / gridDim.x;
  const int begin = blockIdx.x * slice;
  const int end = min(count, begin + slice);
  float best = -INFINITY;
  int best_index = kNoIndex;
#pragma unroll 4
  for (int i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const float value = values[i];
    if (beats(value, i, best, best_index)) {
      best = value;
      best_index = i;
    }
  }
  block_argmax(best, best_index);
  if (threadIdx.x == 0) {
    best_values[blockIdx.x] = best;
    best_indices[blockIdx.x] = best_index;
  }
}

__global__ void argmax_final_kernel(const float* best_values, const int* best_indices, int blocks,
                                    std::int32_t* result) {
  pdl_launch_dependents();
  pdl_wait();
  float best = -INFINITY;
  int best_index = kNoIndex;
  for (int b = threadIdx.x; b < blocks; b += blockDim.x) {
    if (beats(best_values[b], best_indices[b], best, best_index)) {
      best = best_values[b];
      best_index = best_indices[b];
    }
  }
  block_argmax(best, best_index);
  if (threadIdx.x == 0) *result = best_index == kNoIndex ? 0 : best_index;
}

}  // namespace

void gather_rows(const __nv_bfloat16* table, int width, const std::int32_t* ids, int count,
                 float* out, cudaStream_t stream) {
  launch_pdl("gather_bf16_kernel", gather_bf16_kernel,
             blocks_for(static_cast<std::size_t>(count) * width), kThreads, 0, stream, table, width,
             ids, count, out);
}

void gather_rows(const float* table, int width, const std::int32_t* ids, int count, float* out,
                 cudaStream_t stream) {
  launch_pdl("gather_f32_kernel", gather_f32_kernel,
             blocks_for(static_cast<std::size_t>(count) * width), kThreads, 0, stream, table, width,
             ids, count, out);
}

void gather_rows(const AffineDeviceWeight& table, const std::int32_t* ids, int count, float* out,
                 cudaStream_t stream) {
  const int width = table.in();
  launch_pdl("gather_affine_kernel", gather_affine_kernel,
             blocks_for(static_cast<std::size_t>(count) * width), kThreads, 0, stream,
             table.codes(), table.scales(), table.biases(), width, table.bits(), table.group_size(),
             ids, count, out);
}

void rms_norm(const float* x, int rows, int dim, const float* weight, float eps, float* out,
              cudaStream_t stream) {
  const int threads = std::clamp((dim / 4 + 31) / 32 * 32, 32, 1024);
  launch_pdl("rms_norm_kernel", rms_norm_kernel, rows, threads, 0, stream, x, dim, weight, eps,
             out);
}

void rope_store_kv(float* qkv, int rows, int row_stride, int heads, int kv_heads, int head_dim,
                   const float* inverse_frequencies, const int* first_position, float* k_cache,
                   float* v_cache, cudaStream_t stream) {
  const std::size_t items = static_cast<std::size_t>(rows) * (heads + kv_heads) * (head_dim / 2) +
                            static_cast<std::size_t>(rows) * kv_heads * head_dim;
  launch_pdl("rope_store_kv_kernel", rope_store_kv_kernel, blocks_for(items), kThreads, 0, stream,
             qkv, rows, row_stride, heads, kv_heads, head_dim, inverse_frequencies, first_position,
             k_cache, v_cache);
}

std::size_t attention_workspace_floats(const AttentionShape& shape, int count, int keys) {
  if (count >= kTiledMinQueries) return 0;
  return static_cast<std::size_t>(decode_splits(shape, keys)) * static_cast<std::size_t>(count) *
         shape.heads * (shape.head_dim + 2);
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
  launch_pdl("swiglu_kernel", swiglu_kernel, blocks_for(static_cast<std::size_t>(rows) * width),
             kThreads, 0, stream, gate_up, rows, width, out);
}

void split_bf16(const float* x, int rows, int width, __nv_bfloat16* out, cudaStream_t stream) {
  const std::size_t elements = static_cast<std::size_t>(rows) * width;
  launch_pdl("split_bf16_kernel", split_bf16_kernel, blocks_for(elements), kThreads, 0, stream, x,
             elements, out);
}

void linear_epilogue(const float* a, const float* b, const float* bias, int rows, int width,
                     float* y, int y_stride, int column, bool accumulate, cudaStream_t stream) {
  launch_pdl("linear_epilogue_kernel", linear_epilogue_kernel,
             blocks_for(static_cast<std::size_t>(rows) * width), kThreads, 0, stream, a, b, bias,
             rows, width, y, y_stride, column, accumulate);
}

std::size_t argmax_workspace_floats() {
  return 2 * kArgmaxBlocks;
}

void argmax(const float* values, int count, float* workspace, std::int32_t* result,
            cudaStream_t stream) {
  if (count < 1) fail("cuda argmax: no values");
  const int blocks = std::min(kArgmaxBlocks, (count + kThreads - 1) / kThreads);
  int* indices = reinterpret_cast<int*>(workspace + kArgmaxBlocks);
  launch_pdl("argmax_partial_kernel", argmax_partial_kernel, blocks, kThreads, 0, stream, values,
             count, workspace, indices);
  launch_pdl("argmax_final_kernel", argmax_final_kernel, 1, kThreads, 0, stream, workspace, indices,
             blocks, result);
}

}  // namespace uq::cuda
