#include <cmath>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/training_kernels.hpp"
#include "kernels/cuda/warp_reduce.cuh"

namespace uq::cuda {
namespace {

constexpr int kThreads = 256;

int blocks_for(std::size_t items) {
  return static_cast<int>((items + kThreads - 1) / kThreads);
}

// Sum (or max) over the block of kThreads threads; every thread gets the result.
template <bool kMax>
__device__ float block_reduce(float value) {
  __shared__ float partial[kThreads / 32];
  __shared__ float result;
  value = kMax ? warp_max(value) : warp_sum(value);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = value;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = partial[0];
    for (int w = 1; w < kThreads / 32; ++w)
      total = kMax ? fmaxf(total, partial[w]) : total + partial[w];
    result = total;
  }
  __syncthreads();
  const float total = result;
  __syncthreads();  // `result` may be reused by the next reduction
  return total;
}

__global__ void rms_norm_backward_kernel(const float* x, int dim, const float* weight, float eps,
                                         const float* grad_out, float* grad_x, bool accumulate) {
  const std::size_t offset = static_cast<std::size_t>(blockIdx.x) * dim;
  const float* row = x + offset;
  const float* grad_row = grad_out + offset;
  float squares = 0.0f;
  float dot = 0.0f;  // Σ weight ⊙ grad_out ⊙ x
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    squares += row[i] * row[i];
    dot += weight[i] * grad_row[i] * row[i];
  }
  squares = block_reduce<false>(squares);
  dot = block_reduce<false>(dot);
  const float inverse_rms = 1.0f / sqrtf(squares / static_cast<float>(dim) + eps);
  const float correction = dot * inverse_rms * inverse_rms * inverse_rms / static_cast<float>(dim);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    const float value = weight[i] * grad_row[i] * inverse_rms - row[i] * correction;
    grad_x[offset + i] = accumulate ? grad_x[offset + i] + value : value;
  }
}

// The rotation of element pair (i, i + half) at `position`: the CPU's float32 angle, its
// cosine and sine in double.
__device__ void rotation(int position, float inverse_frequency, float& cosine, float& sine) {
  const float angle = static_cast<float>(position) * inverse_frequency;
  cosine = static_cast<float>(cos(static_cast<double>(angle)));
  sine = static_cast<float>(sin(static_cast<double>(angle)));
}

// One thread per (row, head of q|k|v, pair i). Heads 0..heads-1 are q, then kv_heads of k,
// then kv_heads of v. `to_heads`: rows -> head-major (rotating by +angle); else the backward.
__global__ void rope_move_kernel(float* rows_data, int stride, int windows, int tokens, int heads,
                                 int kv_heads, int head_dim, const float* inverse_frequencies,
                                 float* q_heads, float* k_heads, float* v_heads, bool to_heads) {
  const int half = head_dim / 2;
  const int all_heads = heads + 2 * kv_heads;
  const std::size_t index = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (index >= static_cast<std::size_t>(windows) * tokens * all_heads * half) return;
  const int i = static_cast<int>(index % half);
  const int head = static_cast<int>(index / half % all_heads);
  const std::size_t row = index / half / all_heads;
  const int window = static_cast<int>(row / tokens);
  const int position = static_cast<int>(row % tokens);
  float* row_pair = rows_data + row * stride + static_cast<std::size_t>(head) * head_dim;
  float* block;
  int block_head;
  int block_heads;
  if (head < heads) {
    block = q_heads;
    block_head = head;
    block_heads = heads;
  } else if (head < heads + kv_heads) {
    block = k_heads;
    block_head = head - heads;
    block_heads = kv_heads;
  } else {
    block = v_heads;
    block_head = head - heads - kv_heads;
    block_heads = kv_heads;
  }
  float* head_pair =
      block + ((static_cast<std::size_t>(window) * block_heads + block_head) * tokens + position) *
                  head_dim;
  const bool rotated = head < heads + kv_heads;
  float cosine = 1.0f;
  float sine = 0.0f;
  if (rotated) rotation(position, inverse_frequencies[i], cosine, sine);
  if (!to_heads) sine = -sine;
  const float* from = to_heads ? row_pair : head_pair;
  float* to = to_heads ? head_pair : row_pair;
  const float first = from[i];
  const float second = from[i + half];
  to[i] = first * cosine - second * sine;
  to[i + half] = second * cosine + first * sine;
}

__global__ void move_heads_kernel(float* heads_major, int windows, int tokens, int heads,
                                  int head_dim, float* rows_data, bool to_rows) {
  const std::size_t index = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  const std::size_t width = static_cast<std::size_t>(heads) * head_dim;
  if (index >= static_cast<std::size_t>(windows) * tokens * width) return;
  const std::size_t row = index / width;
  const std::size_t column = index % width;
  const std::size_t window = row / tokens;
  const std::size_t position = row % tokens;
  const std::size_t head = column / head_dim;
  const std::size_t d = column % head_dim;
  const std::size_t at = ((window * heads + head) * tokens + position) * head_dim + d;
  if (to_rows) {
    rows_data[index] = heads_major[at];
  } else {
    heads_major[at] = rows_data[index];
  }
}

__device__ bool key_visible(int key, int position, int window) {
  return key <= position && (window == 0 || position - key < window);
}

__global__ void causal_softmax_kernel(float* scores, int tokens, float scale, int window) {
  float* row = scores + static_cast<std::size_t>(blockIdx.x) * tokens;
  const int position = static_cast<int>(blockIdx.x % static_cast<unsigned>(tokens));
  float largest = -INFINITY;
  for (int j = threadIdx.x; j < tokens; j += blockDim.x) {
    if (key_visible(j, position, window)) largest = fmaxf(largest, scale * row[j]);
  }
  largest = block_reduce<true>(largest);
  float sum = 0.0f;
  for (int j = threadIdx.x; j < tokens; j += blockDim.x) {
    if (key_visible(j, position, window)) sum += expf(scale * row[j] - largest);
  }
  sum = block_reduce<false>(sum);
  const float inverse = 1.0f / sum;
  for (int j = threadIdx.x; j < tokens; j += blockDim.x) {
    row[j] = key_visible(j, position, window) ? expf(scale * row[j] - largest) * inverse : 0.0f;
  }
}

__global__ void softmax_backward_kernel(const float* probabilities, float* grad, int tokens,
                                        float scale) {
  const std::size_t offset = static_cast<std::size_t>(blockIdx.x) * tokens;
  const float* p = probabilities + offset;
  float* g = grad + offset;
  float dot = 0.0f;
  for (int j = threadIdx.x; j < tokens; j += blockDim.x) dot += p[j] * g[j];
  dot = block_reduce<false>(dot);
  for (int j = threadIdx.x; j < tokens; j += blockDim.x) g[j] = scale * p[j] * (g[j] - dot);
}

__global__ void swiglu_backward_kernel(const float* gate_up, const float* grad_act, int rows,
                                       int width, float* grad_gate_up) {
  const std::size_t index = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (index >= static_cast<std::size_t>(rows) * width) return;
  const std::size_t row = index / width;
  const std::size_t column = index % width;
  const std::size_t at = row * 2 * width + column;
  const float gate = gate_up[at];
  const float up = gate_up[at + width];
  const float sigmoid = 1.0f / (1.0f + expf(-gate));
  const float silu = gate * sigmoid;
  const float g = grad_act[index];
  grad_gate_up[at] = g * up * sigmoid * (1.0f + gate * (1.0f - sigmoid));
  grad_gate_up[at + width] = g * silu;
}

__global__ void cross_entropy_kernel(float* logits, const std::int32_t* ids, int tokens, int vocab,
                                     float weight, float* nll) {
  const std::size_t r = blockIdx.x;
  float* row = logits + r * static_cast<std::size_t>(vocab);
  if (static_cast<int>(r % static_cast<unsigned>(tokens)) == tokens - 1) {
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) row[j] = 0.0f;
    if (threadIdx.x == 0) nll[r] = 0.0f;
    return;
  }
  const int target = ids[r + 1];
  float largest = -INFINITY;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) largest = fmaxf(largest, row[j]);
  largest = block_reduce<true>(largest);
  float sum = 0.0f;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) sum += expf(row[j] - largest);
  sum = block_reduce<false>(sum);
  const float target_logit = row[target];
  __syncthreads();  // every thread read the target's logit before it is overwritten
  const float inverse = 1.0f / sum;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
    const float p = expf(row[j] - largest) * inverse;
    row[j] = weight * (j == target ? p - 1.0f : p);
  }
  if (threadIdx.x == 0) nll[r] = logf(sum) + largest - target_logit;
}

__device__ float keep_scale(std::uint64_t seed, std::uint64_t index, float p) {
  // splitmix64 of (seed, index): a counter-based draw, so the backward redraws the mask.
  std::uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  const float uniform = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
  return uniform < p ? 0.0f : 1.0f / (1.0f - p);
}

__global__ void dropout_kernel(const float* x, std::int64_t count, float p, std::uint64_t seed,
                               float* out, bool accumulate) {
  const std::size_t index = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (index >= static_cast<std::size_t>(count)) return;
  const float value = x[index] * keep_scale(seed, index, p);
  out[index] = accumulate ? out[index] + value : value;
}

__global__ void add_bias_kernel(float* y, int rows, int width, int stride, const float* bias) {
  const std::size_t index = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (index >= static_cast<std::size_t>(rows) * width) return;
  const std::size_t row = index / width;
  const std::size_t column = index % width;
  y[row * stride + column] += bias[column];
}

__global__ void iota_kernel(std::int32_t* values, int count) {
  const int index = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (index < count) values[index] = index;
}

constexpr int kNormBlocks = 512;

// Per-block partial sums, then one block adds them up in order: no atomics, same bits.
__global__ void squared_norm_kernel(const float* values, std::int64_t count, double* partials) {
  __shared__ double block_sums[kThreads];
  double local = 0.0;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
       i < static_cast<std::size_t>(count); i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    local += static_cast<double>(values[i]) * values[i];
  }
  block_sums[threadIdx.x] = local;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride)
      block_sums[threadIdx.x] += block_sums[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = block_sums[0];
}

__global__ void sum_partials_kernel(const double* partials, int count, double* sum) {
  double total = 0.0;
  for (int i = 0; i < count; ++i) total += partials[i];
  *sum = total;
}

__global__ void adamw_kernel(float* parameters, const float* gradients, float* m, float* v,
                             std::int64_t count, AdamWStep step) {
  const std::size_t index = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (index >= static_cast<std::size_t>(count)) return;
  const float g = gradients[index] * step.gradient_scale;
  const float first = step.beta1 * m[index] + (1.0f - step.beta1) * g;
  const float second = step.beta2 * v[index] + (1.0f - step.beta2) * g * g;
  m[index] = first;
  v[index] = second;
  const double denominator = sqrt(static_cast<double>(second) / step.correction2) + step.eps;
  const double decay = 1.0 - static_cast<double>(step.lr) * step.weight_decay;
  const double updated = static_cast<double>(parameters[index]) * decay -
                         static_cast<double>(step.lr) / step.correction1 * first / denominator;
  parameters[index] = static_cast<float>(updated);
}

}  // namespace

void rms_norm_backward(const float* x, int rows, int dim, const float* weight, float eps,
                       const float* grad_out, float* grad_x, bool accumulate, cudaStream_t stream) {
  rms_norm_backward_kernel<<<rows, kThreads, 0, stream>>>(x, dim, weight, eps, grad_out, grad_x,
                                                          accumulate);
  UQ_CUDA_CHECK_LAUNCH("rms_norm_backward_kernel");
}

void rope_to_heads(const float* qkv, int stride, const WindowShape& shape, int heads, int kv_heads,
                   int head_dim, const float* inverse_frequencies, float* q_heads, float* k_heads,
                   float* v_heads, cudaStream_t stream) {
  const std::size_t items =
      static_cast<std::size_t>(shape.rows()) * (heads + 2 * kv_heads) * (head_dim / 2);
  // The kernel only reads the rows in this direction.
  rope_move_kernel<<<blocks_for(items), kThreads, 0, stream>>>(
      const_cast<float*>(qkv), stride, shape.windows, shape.tokens, heads, kv_heads, head_dim,
      inverse_frequencies, q_heads, k_heads, v_heads, true);
  UQ_CUDA_CHECK_LAUNCH("rope_move_kernel");
}

void heads_to_rope_rows(const float* grad_q, const float* grad_k, const float* grad_v,
                        const WindowShape& shape, int heads, int kv_heads, int head_dim,
                        const float* inverse_frequencies, float* grad_qkv, int stride,
                        cudaStream_t stream) {
  const std::size_t items =
      static_cast<std::size_t>(shape.rows()) * (heads + 2 * kv_heads) * (head_dim / 2);
  // The kernel only reads the head-major blocks in this direction.
  rope_move_kernel<<<blocks_for(items), kThreads, 0, stream>>>(
      grad_qkv, stride, shape.windows, shape.tokens, heads, kv_heads, head_dim, inverse_frequencies,
      const_cast<float*>(grad_q), const_cast<float*>(grad_k), const_cast<float*>(grad_v), false);
  UQ_CUDA_CHECK_LAUNCH("rope_move_kernel");
}

void heads_to_rows(const float* heads_major, const WindowShape& shape, int heads, int head_dim,
                   float* rows, cudaStream_t stream) {
  const std::size_t items = static_cast<std::size_t>(shape.rows()) * heads * head_dim;
  move_heads_kernel<<<blocks_for(items), kThreads, 0, stream>>>(
      const_cast<float*>(heads_major), shape.windows, shape.tokens, heads, head_dim, rows, true);
  UQ_CUDA_CHECK_LAUNCH("move_heads_kernel");
}

void rows_to_heads(const float* rows, const WindowShape& shape, int heads, int head_dim,
                   float* heads_major, cudaStream_t stream) {
  const std::size_t items = static_cast<std::size_t>(shape.rows()) * heads * head_dim;
  move_heads_kernel<<<blocks_for(items), kThreads, 0, stream>>>(
      heads_major, shape.windows, shape.tokens, heads, head_dim, const_cast<float*>(rows), false);
  UQ_CUDA_CHECK_LAUNCH("move_heads_kernel");
}

void causal_softmax(float* scores, std::int64_t count, int tokens, float scale, int window,
                    cudaStream_t stream) {
  causal_softmax_kernel<<<static_cast<unsigned>(count), kThreads, 0, stream>>>(scores, tokens,
                                                                               scale, window);
  UQ_CUDA_CHECK_LAUNCH("causal_softmax_kernel");
}

void softmax_backward(const float* probabilities, float* grad, std::int64_t count, int tokens,
                      float scale, cudaStream_t stream) {
  softmax_backward_kernel<<<static_cast<unsigned>(count), kThreads, 0, stream>>>(
      probabilities, grad, tokens, scale);
  UQ_CUDA_CHECK_LAUNCH("softmax_backward_kernel");
}

void swiglu_backward(const float* gate_up, const float* grad_act, int rows, int width,
                     float* grad_gate_up, cudaStream_t stream) {
  swiglu_backward_kernel<<<blocks_for(static_cast<std::size_t>(rows) * width), kThreads, 0,
                           stream>>>(gate_up, grad_act, rows, width, grad_gate_up);
  UQ_CUDA_CHECK_LAUNCH("swiglu_backward_kernel");
}

void cross_entropy(float* logits, const std::int32_t* ids, const WindowShape& shape, int vocab,
                   float weight, float* nll, cudaStream_t stream) {
  cross_entropy_kernel<<<shape.rows(), kThreads, 0, stream>>>(logits, ids, shape.tokens, vocab,
                                                              weight, nll);
  UQ_CUDA_CHECK_LAUNCH("cross_entropy_kernel");
}

void dropout(const float* x, std::int64_t count, float p, std::uint64_t seed, float* out,
             bool accumulate, cudaStream_t stream) {
  dropout_kernel<<<blocks_for(static_cast<std::size_t>(count)), kThreads, 0, stream>>>(
      x, count, p, seed, out, accumulate);
  UQ_CUDA_CHECK_LAUNCH("dropout_kernel");
}

void add_bias(float* y, int rows, int width, int stride, const float* bias, cudaStream_t stream) {
  add_bias_kernel<<<blocks_for(static_cast<std::size_t>(rows) * width), kThreads, 0, stream>>>(
      y, rows, width, stride, bias);
  UQ_CUDA_CHECK_LAUNCH("add_bias_kernel");
}

void iota(std::int32_t* values, int count, cudaStream_t stream) {
  iota_kernel<<<blocks_for(static_cast<std::size_t>(count)), kThreads, 0, stream>>>(values, count);
  UQ_CUDA_CHECK_LAUNCH("iota_kernel");
}

int squared_norm_partials() {
  return kNormBlocks;
}

void squared_norm(const float* values, std::int64_t count, double* partials, double* sum,
                  cudaStream_t stream) {
  squared_norm_kernel<<<kNormBlocks, kThreads, 0, stream>>>(values, count, partials);
  UQ_CUDA_CHECK_LAUNCH("squared_norm_kernel");
  sum_partials_kernel<<<1, 1, 0, stream>>>(partials, kNormBlocks, sum);
  UQ_CUDA_CHECK_LAUNCH("sum_partials_kernel");
}

void adamw(float* parameters, const float* gradients, float* m, float* v, std::int64_t count,
           const AdamWStep& step, cudaStream_t stream) {
  adamw_kernel<<<blocks_for(static_cast<std::size_t>(count)), kThreads, 0, stream>>>(
      parameters, gradients, m, v, count, step);
  UQ_CUDA_CHECK_LAUNCH("adamw_kernel");
}

}  // namespace uq::cuda
