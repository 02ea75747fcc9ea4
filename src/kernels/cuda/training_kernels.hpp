#pragma once
// The GPU stages of QLoRA training besides the matrix products (which are cuBLAS): the
// backward of RMSNorm and SwiGLU, RoPE fused with the move of q, k, v between token rows
// [windows * tokens, heads * head_dim] and head-major blocks [windows, heads, tokens, head_dim]
// (where cuBLAS batches the attention products), the masked softmax and its backward,
// next-token cross-entropy, adapter-input dropout, and the optimizer (global squared norm,
// AdamW with the clipping factor folded in). float32 throughout; pointers are device memory;
// every launch is checked.
#include <cuda_runtime.h>

#include <cstdint>

namespace uq::cuda {

// Token rows are windows * tokens; row r sits at position r % tokens of its window.
struct WindowShape {
  int windows = 0;
  int tokens = 0;
  int rows() const { return windows * tokens; }
};

// grad_x (+)= ∂loss/∂x of out = weight ⊙ x / rms(x), given grad_out; the weight is frozen.
void rms_norm_backward(const float* x, int rows, int dim, const float* weight, float eps,
                       const float* grad_out, float* grad_x, bool accumulate, cudaStream_t stream);

// From fused rows qkv [rows, q_width + 2 kv_width] (row stride `stride`): q rotated into
// q_heads [windows, heads, tokens, head_dim], k rotated into k_heads and v copied into v_heads
// [windows, kv_heads, tokens, head_dim]. RoPE positions restart at 0 in every window.
void rope_to_heads(const float* qkv, int stride, const WindowShape& shape, int heads, int kv_heads,
                   int head_dim, const float* inverse_frequencies, float* q_heads, float* k_heads,
                   float* v_heads, cudaStream_t stream);
// The backward of rope_to_heads: head-major gradients back into fused rows grad_qkv
// (rotated by the opposite angle for q and k).
void heads_to_rope_rows(const float* grad_q, const float* grad_k, const float* grad_v,
                        const WindowShape& shape, int heads, int kv_heads, int head_dim,
                        const float* inverse_frequencies, float* grad_qkv, int stride,
                        cudaStream_t stream);
// Head-major [windows, heads, tokens, head_dim] <-> token rows [rows, heads * head_dim].
void heads_to_rows(const float* heads_major, const WindowShape& shape, int heads, int head_dim,
                   float* rows, cudaStream_t stream);
void rows_to_heads(const float* rows, const WindowShape& shape, int heads, int head_dim,
                   float* heads_major, cudaStream_t stream);

// In place over scores [count, tokens] (row i at query position i % tokens): softmax of
// scale * score over the keys the query sees (causal; with window > 0 only keys in
// (position - window, position]); zero elsewhere.
void causal_softmax(float* scores, std::int64_t count, int tokens, float scale, int window,
                    cudaStream_t stream);
// In place: grad_scores = scale * P ⊙ (grad_p - Σ_j P grad_p), the gradient of the raw scores.
void softmax_backward(const float* probabilities, float* grad, std::int64_t count, int tokens,
                      float scale, cudaStream_t stream);

// grad_gate_up [rows, 2 width] (gate then up per row) of act = silu(gate) ⊙ up given grad_act.
void swiglu_backward(const float* gate_up, const float* grad_act, int rows, int width,
                     float* grad_gate_up, cudaStream_t stream);

// Next-token cross-entropy over logits [rows, vocab]: row r predicts ids[r + 1] unless it is
// the last of its window. Writes each row's NLL into nll[r] (0 for the windows' last rows)
// and overwrites the logits with weight · ∂(Σ NLL)/∂logits (zero rows for those last rows).
void cross_entropy(float* logits, const std::int32_t* ids, const WindowShape& shape, int vocab,
                   float weight, float* nll, cudaStream_t stream);

// out = x ⊙ keep / (1 - p) with keep drawn per element from (seed, element index); the same
// seed redraws the same mask. With accumulate: out += x ⊙ mask instead (the backward).
void dropout(const float* x, std::int64_t count, float p, std::uint64_t seed, float* out,
             bool accumulate, cudaStream_t stream);

// y[r, o] += bias[o] for r < rows, o < width, rows at stride `stride`.
void add_bias(float* y, int rows, int width, int stride, const float* bias, cudaStream_t stream);

// values[i] = i for i < count (row indices for tile dequantization through a gather).
void iota(std::int32_t* values, int count, cudaStream_t stream);

// *sum = Σ values[i]² in float64, summed in a fixed order (the same bits on every run);
// `partials` holds squared_norm_partials() doubles.
int squared_norm_partials();
void squared_norm(const float* values, std::int64_t count, double* partials, double* sum,
                  cudaStream_t stream);

struct AdamWStep {
  float lr = 0.0f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  double correction1 = 1.0;     // 1 - beta1^step
  double correction2 = 1.0;     // 1 - beta2^step
  float gradient_scale = 1.0f;  // the clipping factor
};
// One AdamW update (torch.optim.AdamW's formula) of every parameter with gradient
// gradient_scale * grad.
void adamw(float* parameters, const float* gradients, float* m, float* v, std::int64_t count,
           const AdamWStep& step, cudaStream_t stream);

}  // namespace uq::cuda
