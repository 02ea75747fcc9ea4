#pragma once
// The decoder's operations for training, each as a forward that keeps what its
// backward needs and that backward. Templated on the scalar type: float for
// training, double for the finite-difference gradient check. Row-major arrays.
#include <cstdint>
#include <optional>
#include <vector>

namespace uq::train {

// C = alpha·op(A)·op(B) + beta·C with op(M) = M or Mᵀ (OpenBLAS s/dgemm).
template <typename T>
void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k,
          T alpha, const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c,
          std::int64_t ldc);

// out = weight ⊙ x / rms(x) per row; inverse_rms[r] keeps 1/rms of row r.
template <typename T>
void rms_norm_forward(const T* x, std::int64_t rows, std::int64_t dim, const T* weight, T eps,
                      T* out, T* inverse_rms);
// grad_x = ∂loss/∂x given grad_out (the weight is frozen, so it gets no gradient).
template <typename T>
void rms_norm_backward(const T* x, const T* inverse_rms, std::int64_t rows, std::int64_t dim,
                       const T* weight, const T* grad_out, T* grad_x);

// Rotary embedding of rows at positions 0..rows-1 (HF rotate_half layout), in
// place. `inverse` rotates by the opposite angle: the backward of the rotation.
template <typename T>
void rope_rotate(T* x, std::int64_t rows, std::int64_t heads, std::int64_t head_dim,
                 const std::vector<float>& inverse_frequencies, bool inverse);

struct AttentionDims {
  std::int64_t tokens = 0;  // the sequence, positions 0..tokens-1
  std::int64_t heads = 0;
  std::int64_t kv_heads = 0;
  std::int64_t head_dim = 0;
  std::optional<std::int64_t> sliding_window;
};

// Causal grouped-query attention. q [tokens, heads·dim], k and v
// [tokens, kv_heads·dim]; writes out [tokens, heads·dim] and the softmax
// probabilities [heads, tokens, tokens] (zero where masked).
template <typename T>
void attention_forward(const T* q, const T* k, const T* v, const AttentionDims& dims, T* out,
                       T* probabilities);
template <typename T>
void attention_backward(const T* q, const T* k, const T* v, const T* probabilities,
                        const T* grad_out, const AttentionDims& dims, T* grad_q, T* grad_k,
                        T* grad_v);

// act = silu(gate) ⊙ up, and its backward into grad_gate and grad_up.
template <typename T>
void swiglu_forward(const T* gate, const T* up, std::int64_t count, T* act);
template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* grad_act, std::int64_t count,
                     T* grad_gate, T* grad_up);

// Next-token cross-entropy over logits [tokens, vocab]: row t predicts
// ids[t + 1], the last row predicts nothing. Returns the summed negative
// log-likelihood and overwrites the logits with weight·∂(sum NLL)/∂logits.
template <typename T>
double cross_entropy_forward_backward(T* logits, const std::int32_t* ids, std::int64_t tokens,
                                      std::int64_t vocab, T weight);

}  // namespace uq::train
