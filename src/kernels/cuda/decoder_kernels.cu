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
constexpr int kWarps = 4;            // attention blocks: 4 warps
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

// RoPE angle of a dimension pair at `position`: float32 angle like transformers, its cosine and
// sine in double like the CPU path.
struct RopeAngle {
  float cosine;
  float sine;
};

__device__ RopeAngle rope_angle(int position, float inverse_frequency) {
  const float angle = static_cast<float>(position) * inverse_frequency;
  return {static_cast<float>(cos(static_cast<double>(angle))),
          static_cast<float>(sin(static_cast<double>(angle)))};
}

// (first, second) = the pair (x[i], x[i + head_dim / 2]) rotated (rotate_half layout).
__device__ void rotate_pair(float x_first, float x_second, RopeAngle angle, float& first,
                            float& second) {
  first = x_first * angle.cosine - x_second * angle.sine;
  second = x_second * angle.cosine + x_first * angle.sine;
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
  const RopeAngle angle = rope_angle(first_position + row, inverse_frequencies[i]);
  float* pair = qkv + static_cast<std::size_t>(row) * row_stride + head * head_dim;
  float* target = pair;
  if (head >= heads) {
    target = k_cache + static_cast<std::size_t>(first_position + row) * kv_width +
             (head - heads) * head_dim;
  }
  rotate_pair(pair[i], pair[i + half], angle, target[i], target[i + half]);
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

// Decode attention (rope_attention with fewer than kTiledMinQueries rows), one kernel. Block
// (split of the visible keys, kv head and chunk of its query heads, row). A split holds
// kDecodeWarps * decode_keys_per_warp(D) keys (32 at head_dim 128, 16-128 elsewhere: K and V
// tiles of 24-32 KB together); warp w takes keys w, w + 8, ... of it, lane l dimensions l + 32 i.
// 1. Before the programmatic wait: the position, the RoPE angle of the thread's dimension pair,
//    and asynchronous copies of the split's cached keys and values into shared memory (earlier
//    steps wrote them; nothing in this step does).
// 2. After it: the query heads of the chunk rotated and scaled, the split's new keys (positions
//    >= *first_position: this step's rows) rotated from q|k|v; the block whose row's own
//    position falls in its split (first chunk) stores that key and value into the cache.
// 3-5. The split's scores (all key x head dot products at once, each warp-reduced), its softmax
//    (warp h for head h) and weights x values (thread per head and dimension): the partial
//    (max, sum, acc[head_dim]) of the split, written to the workspace. No step waits on another
//    key's result, so the block's latency is a few dependent steps, not one per key.
// 6-7. The last block of (row, kv head, chunk) to arrive (a counter per triple, reset by that
//    block for the next launch) combines the live splits: first the overall max and denominator
//    per head, then exp(max_s - max) acc_s summed with the loads of a batch of splits in flight.
//    The sums run in a fixed order, so results are the same on every run.
// Splits past the row's position leave at once (a replayed decode graph launches enough splits
// for the cache's capacity); split 0 always holds a key, so its blocks always wait.
constexpr int kDecodeWarps = 8;
constexpr int kDecodeThreads = 32 * kDecodeWarps;
// Keys per warp and query heads per block for head_dim 32 * d: K and V tiles of 2 KB * keys per
// warp * d together (<= 32 KB), keys per warp x heads scores per lane (<= 128).
__host__ __device__ constexpr int decode_keys_per_warp(int d) {
  return d >= 6 ? 2 : 16 / d;
}
__host__ __device__ constexpr int decode_chunk_heads(int d) {
  return d <= 2 ? 8 : 16 / d;
}
// Per (row, head, split): max, sum, two unused floats (16-byte aligned acc), acc[head_dim].
constexpr int kPartialHeader = 4;

struct DecodeArguments {
  const float* qkv;
  int row_stride;
  const float* inverse_frequencies;
  const int* first_position;
  float* k_cache;
  float* v_cache;
  AttentionShape shape;
  int splits;
  float scale;
  unsigned* counters;  // [row][kv head][chunk]
  float* partials;     // [row][head][split][kPartialHeader + head_dim]
  float* out;
};

__device__ void copy_async_16(float* shared, const float* global) {
  const auto address = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(address), "l"(global) : "memory");
}

__device__ void copy_async_wait_all() {
  asm volatile("cp.async.wait_all;" ::: "memory");
}

// counter += 1 at device scope with acquire-release order; returns the old count.
__device__ unsigned arrive_acq_rel(unsigned* counter) {
  unsigned old = 0;
  asm volatile("atom.add.acq_rel.gpu.u32 %0, [%1], 1;" : "=r"(old) : "l"(counter) : "memory");
  return old;
}

// (max, sum) of a softmax state merged with another's: the sums rescaled to the larger max.
// A state without keys has max -inf and sum 0.
__device__ void merge_softmax_state(float& max, float& sum, float other_max, float other_sum) {
  if (other_max == -INFINITY) return;
  const float new_max = fmaxf(max, other_max);
  sum = sum * expf(max - new_max) + other_sum * expf(other_max - new_max);
  max = new_max;
}

template <int D>
__global__ void __launch_bounds__(kDecodeThreads) rope_attention_decode_kernel(DecodeArguments a) {
  constexpr int kHeadDim = 32 * D;
  constexpr int kHalf = kHeadDim / 2;
  constexpr int kKeysPerWarp = decode_keys_per_warp(D);
  constexpr int kSplitKeys = kDecodeWarps * kKeysPerWarp;
  constexpr int kHeads = decode_chunk_heads(D);
  constexpr int kTileFloats = kSplitKeys * kHeadDim;
  static_assert(kHeads <= kDecodeWarps, "one warp per head in the softmax and the combine");
  static_assert(kDecodeThreads * 4 <= 2 * kTileFloats, "the combine's group sums fit the tiles");
  // The key and value tiles, later the combine's group sums.
  __shared__ float4 region[2 * kTileFloats / 4];
  __shared__ float query[kHeads * kHeadDim];
  __shared__ float weights[kHeads * kSplitKeys];  // scores, then exp(score - split max)
  __shared__ float head_max[kHeads];
  __shared__ float head_sum[kHeads];  // the split's sum; in the combine 1 / L
  __shared__ bool last_block;

  pdl_launch_dependents();
  const AttentionShape shape = a.shape;
  const int row = blockIdx.z;
  const int first_new = *a.first_position;
  const int position = first_new + row;
  const int first_visible = first_visible_key(shape, position);
  const int first_key = first_visible + static_cast<int>(blockIdx.x) * kSplitKeys;
  if (first_key > position) return;
  const int keys = min(kSplitKeys, position + 1 - first_key);
  const int cached = max(0, min(keys, first_new - first_key));  // keys from earlier steps
  const int group = shape.heads / shape.kv_heads;
  const int chunks = (group + kHeads - 1) / kHeads;
  const int kv_head = static_cast<int>(blockIdx.y) / chunks;
  const int chunk = static_cast<int>(blockIdx.y) % chunks;
  const int first_head = kv_head * group + chunk * kHeads;
  const int heads = min(kHeads, group - chunk * kHeads);
  const std::size_t kv_width = static_cast<std::size_t>(shape.kv_heads) * kHeadDim;
  float* key_tile = reinterpret_cast<float*>(region);
  float* value_tile = key_tile + kTileFloats;

  constexpr int kVectors = kHeadDim / 4;
  for (int i = threadIdx.x; i < cached * kVectors; i += kDecodeThreads) {
    const std::size_t offset = static_cast<std::size_t>(first_key + i / kVectors) * kv_width +
                               static_cast<std::size_t>(kv_head) * kHeadDim + (i % kVectors) * 4;
    copy_async_16(key_tile + 4 * i, a.k_cache + offset);
    copy_async_16(value_tile + 4 * i, a.v_cache + offset);
  }
  // Thread t rotates dimension pair c = t % kHalf of the heads slot, slot + slots, ...
  const int pair = static_cast<int>(threadIdx.x) % kHalf;
  const int slot = static_cast<int>(threadIdx.x) / kHalf;
  constexpr int kSlots = kDecodeThreads / kHalf;  // >= 2: kHalf <= 128
  const float inverse_frequency = a.inverse_frequencies[pair];
  const RopeAngle angle = rope_angle(position, inverse_frequency);
  pdl_wait();

  if (slot < kSlots) {
    const float* q_row = a.qkv + static_cast<std::size_t>(row) * a.row_stride;
    for (int h = slot; h < heads; h += kSlots) {
      const float* source = q_row + static_cast<std::size_t>(first_head + h) * kHeadDim;
      float first = 0.0f;
      float second = 0.0f;
      rotate_pair(source[pair], source[pair + kHalf], angle, first, second);
      query[h * kHeadDim + pair] = first * a.scale;
      query[h * kHeadDim + pair + kHalf] = second * a.scale;
    }
    for (int j = cached + slot; j < keys; j += kSlots) {
      const int key_position = first_key + j;
      const float* source = a.qkv +
                            static_cast<std::size_t>(key_position - first_new) * a.row_stride +
                            static_cast<std::size_t>(shape.heads + kv_head) * kHeadDim;
      const float* value_source = source + kv_width;
      float first = 0.0f;
      float second = 0.0f;
      rotate_pair(source[pair], source[pair + kHalf],
                  key_position == position ? angle : rope_angle(key_position, inverse_frequency),
                  first, second);
      const float value_first = value_source[pair];
      const float value_second = value_source[pair + kHalf];
      key_tile[j * kHeadDim + pair] = first;
      key_tile[j * kHeadDim + pair + kHalf] = second;
      value_tile[j * kHeadDim + pair] = value_first;
      value_tile[j * kHeadDim + pair + kHalf] = value_second;
      if (key_position == position && chunk == 0) {  // the row's own key: stored once
        const std::size_t offset = static_cast<std::size_t>(key_position) * kv_width +
                                   static_cast<std::size_t>(kv_head) * kHeadDim + pair;
        a.k_cache[offset] = first;
        a.k_cache[offset + kHalf] = second;
        a.v_cache[offset] = value_first;
        a.v_cache[offset + kHalf] = value_second;
      }
    }
  }
  copy_async_wait_all();
  __syncthreads();

  // 3. Scores: warp w takes keys w, w + 8, ... of the split, lane l dimensions l + 32 i. The
  //    dot products of kStepKeys keys x every head are independent, so their warp sums overlap
  //    (kStepKeys x heads <= 16 values per lane).
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  constexpr int kStepKeys = 16 / kHeads < kKeysPerWarp ? 16 / kHeads : kKeysPerWarp;
  float q[kHeads][D];
#pragma unroll
  for (int h = 0; h < kHeads; ++h) {
#pragma unroll
    for (int i = 0; i < D; ++i) q[h][i] = h < heads ? query[h * kHeadDim + lane + 32 * i] : 0.0f;
  }
#pragma unroll 1
  for (int first = 0; first < kKeysPerWarp; first += kStepKeys) {
    float score[kStepKeys][kHeads];
#pragma unroll
    for (int n = 0; n < kStepKeys; ++n) {
      const int j = warp + kDecodeWarps * (first + n);
      float k[D];
#pragma unroll
      for (int i = 0; i < D; ++i) k[i] = j < keys ? key_tile[j * kHeadDim + lane + 32 * i] : 0.0f;
#pragma unroll
      for (int h = 0; h < kHeads; ++h) {
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < D; ++i) dot = fmaf(q[h][i], k[i], dot);
        score[n][h] = dot;
      }
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
#pragma unroll
      for (int n = 0; n < kStepKeys; ++n) {
#pragma unroll
        for (int h = 0; h < kHeads; ++h)
          score[n][h] += __shfl_xor_sync(0xffffffffu, score[n][h], offset);
      }
    }
    if (lane == 0) {
#pragma unroll
      for (int n = 0; n < kStepKeys; ++n) {
        const int j = warp + kDecodeWarps * (first + n);  // < keys <= kSplitKeys
#pragma unroll
        for (int h = 0; h < kHeads; ++h)
          if (j < keys) weights[h * kSplitKeys + j] = score[n][h];
      }
    }
  }
  __syncthreads();

  // 4. Softmax over the split, warp h for head h: the split's max and sum, the scores turned into
  //    weights exp(score - max) in place.
  if (warp < heads) {
    float* row_weights = weights + warp * kSplitKeys;
    float split_max = -INFINITY;
    for (int j = lane; j < keys; j += 32) split_max = fmaxf(split_max, row_weights[j]);
    split_max = warp_max(split_max);
    float sum = 0.0f;
    for (int j = lane; j < keys; j += 32) {
      const float weight = expf(row_weights[j] - split_max);
      row_weights[j] = weight;
      sum += weight;
    }
    sum = warp_sum(sum);
    if (lane == 0) {
      head_max[warp] = split_max;
      head_sum[warp] = sum;
    }
  }
  __syncthreads();

  // 5. The split's partial of (head h, dimension d) = sum over keys of weight * value, then
  //    (max, sum, acc[head_dim]) to the workspace.
  const std::size_t partial_floats = kPartialHeader + kHeadDim;
  const std::size_t head_partials = static_cast<std::size_t>(a.splits) * partial_floats;
  float* row_partials =
      a.partials + (static_cast<std::size_t>(row) * shape.heads + first_head) * head_partials;
  for (int item = threadIdx.x; item < heads * kHeadDim; item += kDecodeThreads) {
    const int h = item / kHeadDim;
    const int d = item % kHeadDim;
    const float* row_weights = weights + h * kSplitKeys;
    float value = 0.0f;
    for (int j = 0; j < keys; ++j)
      value = fmaf(row_weights[j], value_tile[j * kHeadDim + d], value);
    float* partial = row_partials + h * head_partials + blockIdx.x * partial_floats;
    partial[kPartialHeader + d] = value;
    if (d == 0) {
      partial[0] = head_max[h];
      partial[1] = head_sum[h];
    }
  }

  // 6. Arrival: the block's partials happen before thread 0's release on the counter (the
  //    barrier orders them), the last block's reads after its acquire. That block resets the
  //    counter for the next launch.
  const int live_splits = (position - first_visible) / kSplitKeys + 1;
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned* counter = a.counters + blockIdx.z * gridDim.y + blockIdx.y;
    const unsigned arrived = arrive_acq_rel(counter) + 1u;
    last_block = arrived == static_cast<unsigned>(live_splits);
    if (last_block) *counter = 0u;
  }
  __syncthreads();
  if (!last_block) return;

  // 7. Combine (plain loads: the acquire above orders them after every block's partials). Warp
  //    h: the max M over the live splits and the denominator L = sum of
  //    sum_s exp(max_s - M), lane-local then across lanes in a fixed tree.
  if (warp < heads) {
    const float* head_partial = row_partials + warp * head_partials;
    float running_max = -INFINITY;
    float sum = 0.0f;
    for (int s = lane; s < live_splits; s += 32) {
      const float split_max = head_partial[s * partial_floats];
      const float split_sum = head_partial[s * partial_floats + 1];
      merge_softmax_state(running_max, sum, split_max, split_sum);
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
      const float other_max = __shfl_xor_sync(0xffffffffu, running_max, offset);
      const float other_sum = __shfl_xor_sync(0xffffffffu, sum, offset);
      merge_softmax_state(running_max, sum, other_max, other_sum);
    }
    if (lane == 0) {
      head_max[warp] = running_max;
      head_sum[warp] = 1.0f / sum;
    }
  }
  __syncthreads();

  // Thread (item = head h and float4 c of head_dim, group g) adds exp(max_s - M) acc_s of splits
  // g, g + groups, ... (a batch of loads in flight at once), then the groups add in order.
  const int items = heads * kVectors;  // <= 128
  const int groups = kDecodeThreads / items;
  const int item = static_cast<int>(threadIdx.x) % items;
  const int g = static_cast<int>(threadIdx.x) / items;
  const int h = item / kVectors;
  const int c = item % kVectors;
  float4* group_values = region;  // [group][item]
  if (g < groups) {
    const float* head_partial = row_partials + h * head_partials;
    const float total_max = head_max[h];
    float4 value = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    constexpr int kBatch = 16;
    for (int first = g; first < live_splits; first += kBatch * groups) {
      float split_max[kBatch];
      float4 split_value[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int s = first + b * groups;
        const float* partial = head_partial + s * partial_floats;
        split_max[b] = s < live_splits ? *partial : -INFINITY;
        split_value[b] = s < live_splits
                             ? reinterpret_cast<const float4*>(partial + kPartialHeader)[c]
                             : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const float weight = expf(split_max[b] - total_max);
        value.x = fmaf(weight, split_value[b].x, value.x);
        value.y = fmaf(weight, split_value[b].y, value.y);
        value.z = fmaf(weight, split_value[b].z, value.z);
        value.w = fmaf(weight, split_value[b].w, value.w);
      }
    }
    group_values[g * items + item] = value;
  }
  __syncthreads();
  if (g == 0) {
    float4 value = group_values[item];
    for (int other = 1; other < groups; ++other) {
      const float4 next = group_values[other * items + item];
      value.x += next.x;
      value.y += next.y;
      value.z += next.z;
      value.w += next.w;
    }
    const float inverse_sum = head_sum[h];
    float* result =
        a.out + (static_cast<std::size_t>(row) * shape.heads + first_head + h) * kHeadDim + 4 * c;
    *reinterpret_cast<float4*>(result) = make_float4(value.x * inverse_sum, value.y * inverse_sum,
                                                     value.z * inverse_sum, value.w * inverse_sum);
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

int decode_split_keys(int head_dim) {
  return kDecodeWarps * decode_keys_per_warp(head_dim / 32);
}

int decode_chunks(const AttentionShape& shape) {
  const int chunk_heads = decode_chunk_heads(shape.head_dim / 32);
  return (shape.heads / shape.kv_heads + chunk_heads - 1) / chunk_heads;
}

// Splits of a decode attention over at most max_keys keys (or the window's).
int decode_splits(const AttentionShape& shape, int max_keys) {
  int visible = max_keys;
  if (shape.sliding_window > 0) visible = std::min(visible, shape.sliding_window);
  const int split_keys = decode_split_keys(shape.head_dim);
  return (visible + split_keys - 1) / split_keys;
}

// The decode workspace starts with one counter per (row, kv head, chunk) for the most rows a
// decode call takes, whatever this call's count, so that they never move; rounded to 4 floats
// to keep the partials after them 16-byte aligned.
std::size_t decode_counter_floats(const AttentionShape& shape) {
  const std::size_t counters = static_cast<std::size_t>(kTiledMinQueries - 1) *
                               static_cast<std::size_t>(shape.kv_heads * decode_chunks(shape));
  return (counters + 3) / 4 * 4;
}

template <int D>
void launch_rope_attention(float* qkv, int count, int row_stride, const float* inverse_frequencies,
                           const int* first_position, int max_keys, float* k_cache, float* v_cache,
                           const AttentionShape& shape, float* workspace, float* out,
                           cudaStream_t stream) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  if (count >= kTiledMinQueries) {
    rope_store_kv(qkv, count, row_stride, shape.heads, shape.kv_heads, shape.head_dim,
                  inverse_frequencies, first_position, k_cache, v_cache, stream);
    const dim3 grid((count + kWarps * kQueriesPerWarp - 1) / (kWarps * kQueriesPerWarp),
                    shape.heads);
    const std::size_t shared = 2 * kTileFloats * sizeof(float);
    launch_pdl("attention_tiled_kernel", attention_tiled_kernel<D>, grid, kWarps * 32, shared,
               stream, qkv, count, row_stride, first_position, k_cache, v_cache, shape, scale, out);
    return;
  }
  const int splits = decode_splits(shape, max_keys);
  const DecodeArguments arguments{qkv,
                                  row_stride,
                                  inverse_frequencies,
                                  first_position,
                                  k_cache,
                                  v_cache,
                                  shape,
                                  splits,
                                  scale,
                                  reinterpret_cast<unsigned*>(workspace),
                                  workspace + decode_counter_floats(shape),
                                  out};
  launch_pdl("rope_attention_decode_kernel", rope_attention_decode_kernel<D>,
             dim3(static_cast<unsigned>(splits),
                  static_cast<unsigned>(shape.kv_heads * decode_chunks(shape)),
                  static_cast<unsigned>(count)),
             kDecodeThreads, 0, stream, arguments);
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
  return decode_counter_floats(shape) + static_cast<std::size_t>(decode_splits(shape, keys)) *
                                            static_cast<std::size_t>(count) * shape.heads *
                                            (kPartialHeader + shape.head_dim);
}

void rope_attention(float* qkv, int count, int row_stride, const float* inverse_frequencies,
                    const int* first_position, int max_keys, float* k_cache, float* v_cache,
                    const AttentionShape& shape, float* workspace, float* out,
                    cudaStream_t stream) {
  if (shape.head_dim % 32 != 0 || shape.head_dim < 32 || shape.head_dim > 256) {
    fail("cuda attention: head_dim ", shape.head_dim, " is not a multiple of 32 in [32, 256]");
  }
  if (shape.kv_heads < 1 || shape.heads % shape.kv_heads != 0) {
    fail("cuda attention: ", shape.heads, " heads are not a multiple of ", shape.kv_heads,
         " key/value heads");
  }
  if (count < 1) fail("cuda attention: no rows");
  const auto misaligned = [](const void* pointer) {
    return reinterpret_cast<std::uintptr_t>(pointer) % 16 != 0;
  };
  if (misaligned(k_cache) || misaligned(v_cache) || misaligned(workspace) || misaligned(out)) {
    fail("cuda attention: the key/value caches, the workspace and out must be 16-byte aligned");
  }
  switch (shape.head_dim / 32) {
    case 1:
      return launch_rope_attention<1>(qkv, count, row_stride, inverse_frequencies, first_position,
                                      max_keys, k_cache, v_cache, shape, workspace, out, stream);
    case 2:
      return launch_rope_attention<2>(qkv, count, row_stride, inverse_frequencies, first_position,
                                      max_keys, k_cache, v_cache, shape, workspace, out, stream);
    case 3:
      return launch_rope_attention<3>(qkv, count, row_stride, inverse_frequencies, first_position,
                                      max_keys, k_cache, v_cache, shape, workspace, out, stream);
    case 4:
      return launch_rope_attention<4>(qkv, count, row_stride, inverse_frequencies, first_position,
                                      max_keys, k_cache, v_cache, shape, workspace, out, stream);
    case 5:
      return launch_rope_attention<5>(qkv, count, row_stride, inverse_frequencies, first_position,
                                      max_keys, k_cache, v_cache, shape, workspace, out, stream);
    case 6:
      return launch_rope_attention<6>(qkv, count, row_stride, inverse_frequencies, first_position,
                                      max_keys, k_cache, v_cache, shape, workspace, out, stream);
    case 7:
      return launch_rope_attention<7>(qkv, count, row_stride, inverse_frequencies, first_position,
                                      max_keys, k_cache, v_cache, shape, workspace, out, stream);
    default:
      return launch_rope_attention<8>(qkv, count, row_stride, inverse_frequencies, first_position,
                                      max_keys, k_cache, v_cache, shape, workspace, out, stream);
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
