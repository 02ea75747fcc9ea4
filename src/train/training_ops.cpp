#include "train/training_ops.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "core/thread_pool.hpp"
#include "model/blas.hpp"

namespace uq::train {
namespace {

CBLAS_TRANSPOSE blas_transpose(bool transpose) {
  return transpose ? CblasTrans : CblasNoTrans;
}

blasint blas_int(std::int64_t value) {
  return static_cast<blasint>(value);
}

std::int64_t first_visible_key(const AttentionDims& dims, std::int64_t position) {
  return dims.sliding_window ? std::max<std::int64_t>(0, position - *dims.sliding_window + 1) : 0;
}

}  // namespace

template <>
void gemm<float>(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k,
                 float alpha, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                 float beta, float* c, std::int64_t ldc) {
  use_single_threaded_blas();
  cblas_sgemm(CblasRowMajor, blas_transpose(transpose_a), blas_transpose(transpose_b), blas_int(m),
              blas_int(n), blas_int(k), alpha, a, blas_int(lda), b, blas_int(ldb), beta, c,
              blas_int(ldc));
}

template <>
void gemm<double>(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n,
                  std::int64_t k, double alpha, const double* a, std::int64_t lda, const double* b,
                  std::int64_t ldb, double beta, double* c, std::int64_t ldc) {
  use_single_threaded_blas();
  cblas_dgemm(CblasRowMajor, blas_transpose(transpose_a), blas_transpose(transpose_b), blas_int(m),
              blas_int(n), blas_int(k), alpha, a, blas_int(lda), b, blas_int(ldb), beta, c,
              blas_int(ldc));
}

template <typename T>
void rms_norm_forward(const T* x, std::int64_t rows, std::int64_t dim, const T* weight, T eps,
                      T* out, T* inverse_rms) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* in_row = x + r * dim;
    double sum_squares = 0.0;
    for (std::int64_t i = 0; i < dim; ++i) sum_squares += double(in_row[i]) * double(in_row[i]);
    const T inverse =
        T(1) / std::sqrt(static_cast<T>(sum_squares / static_cast<double>(dim)) + eps);
    inverse_rms[r] = inverse;
    for (std::int64_t i = 0; i < dim; ++i) out[r * dim + i] = weight[i] * (in_row[i] * inverse);
  }
}

template <typename T>
void rms_norm_backward(const T* x, const T* inverse_rms, std::int64_t rows, std::int64_t dim,
                       const T* weight, const T* grad_out, T* grad_x) {
  // y_i = w_i x_i s with s = (mean(x²) + eps)^-½, so
  // ∂L/∂x_i = s w_i g_i - x_i s³ / dim · Σ_j w_j g_j x_j.
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* in_row = x + r * dim;
    const T* g = grad_out + r * dim;
    const T s = inverse_rms[r];
    double dot = 0.0;
    for (std::int64_t i = 0; i < dim; ++i) dot += double(weight[i] * g[i]) * double(in_row[i]);
    const T correction = static_cast<T>(dot) * s * s * s / static_cast<T>(dim);
    for (std::int64_t i = 0; i < dim; ++i) {
      grad_x[r * dim + i] = s * weight[i] * g[i] - in_row[i] * correction;
    }
  }
}

template <typename T>
void rope_rotate(T* x, std::int64_t rows, std::int64_t heads, std::int64_t head_dim,
                 const std::vector<float>& inverse_frequencies, bool inverse) {
  const std::int64_t half = head_dim / 2;
  std::vector<T> cosines(static_cast<std::size_t>(half));
  std::vector<T> sines(static_cast<std::size_t>(half));
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t i = 0; i < half; ++i) {
      // The same float32 angle as inference (model/rope.cpp).
      const float angle = static_cast<float>(r) * inverse_frequencies[static_cast<std::size_t>(i)];
      cosines[i] = static_cast<T>(std::cos(static_cast<double>(angle)));
      const T sine = static_cast<T>(std::sin(static_cast<double>(angle)));
      sines[i] = inverse ? -sine : sine;
    }
    for (std::int64_t h = 0; h < heads; ++h) {
      T* head = x + (r * heads + h) * head_dim;
      for (std::int64_t i = 0; i < half; ++i) {
        const T first = head[i];
        const T second = head[i + half];
        head[i] = first * cosines[i] - second * sines[i];
        head[i + half] = second * cosines[i] + first * sines[i];
      }
    }
  }
}

template <typename T>
void attention_forward(const T* q, const T* k, const T* v, const AttentionDims& dims, T* out,
                       T* probabilities) {
  const std::int64_t n = dims.tokens;
  const std::int64_t d = dims.head_dim;
  const std::int64_t q_row = dims.heads * d;
  const std::int64_t kv_row = dims.kv_heads * d;
  const std::int64_t group = dims.heads / dims.kv_heads;
  const T scale = T(1) / std::sqrt(static_cast<T>(d));
  parallel_for(0, dims.heads, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t h = lo; h < hi; ++h) {
      const std::int64_t kv = h / group;
      T* p = probabilities + h * n * n;
      gemm<T>(false, true, n, n, d, scale, q + h * d, q_row, k + kv * d, kv_row, T(0), p, n);
      for (std::int64_t i = 0; i < n; ++i) {
        T* row = p + i * n;
        const std::int64_t from = first_visible_key(dims, i);
        T max_value = row[from];
        for (std::int64_t j = from; j <= i; ++j) max_value = std::max(max_value, row[j]);
        T total = 0;
        for (std::int64_t j = from; j <= i; ++j) {
          row[j] = std::exp(row[j] - max_value);
          total += row[j];
        }
        for (std::int64_t j = from; j <= i; ++j) row[j] /= total;
        std::fill(row, row + from, T(0));
        std::fill(row + i + 1, row + n, T(0));
      }
      gemm<T>(false, false, n, d, n, T(1), p, n, v + kv * d, kv_row, T(0), out + h * d, q_row);
    }
  });
}

template <typename T>
void attention_backward(const T* q, const T* k, const T* v, const T* probabilities,
                        const T* grad_out, const AttentionDims& dims, T* grad_q, T* grad_k,
                        T* grad_v) {
  const std::int64_t n = dims.tokens;
  const std::int64_t d = dims.head_dim;
  const std::int64_t q_row = dims.heads * d;
  const std::int64_t kv_row = dims.kv_heads * d;
  const std::int64_t group = dims.heads / dims.kv_heads;
  const T scale = T(1) / std::sqrt(static_cast<T>(d));
  // One task per key/value head: the query heads sharing it add into its
  // gradients one after another, so no two threads write the same column block.
  parallel_for(0, dims.kv_heads, 1, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<T> grad_scores(static_cast<std::size_t>(n * n));
    for (std::int64_t kv = lo; kv < hi; ++kv) {
      for (std::int64_t i = 0; i < n; ++i) {
        std::fill_n(grad_k + i * kv_row + kv * d, d, T(0));
        std::fill_n(grad_v + i * kv_row + kv * d, d, T(0));
      }
      for (std::int64_t h = kv * group; h < (kv + 1) * group; ++h) {
        const T* p = probabilities + h * n * n;
        const T* g_out = grad_out + h * d;
        // dV += Pᵀ dO; dP = dO Vᵀ.
        gemm<T>(true, false, n, d, n, T(1), p, n, g_out, q_row, T(1), grad_v + kv * d, kv_row);
        T* ds = grad_scores.data();
        gemm<T>(false, true, n, n, d, T(1), g_out, q_row, v + kv * d, kv_row, T(0), ds, n);
        // Softmax backward: dS = P ⊙ (dP - Σ_j P dP), then the 1/sqrt(d) scale.
        for (std::int64_t i = 0; i < n; ++i) {
          const T* p_row = p + i * n;
          T* row = ds + i * n;
          T dot = 0;
          for (std::int64_t j = 0; j <= i; ++j) dot += p_row[j] * row[j];
          for (std::int64_t j = 0; j < n; ++j) row[j] = p_row[j] * (row[j] - dot) * scale;
        }
        gemm<T>(false, false, n, d, n, T(1), ds, n, k + kv * d, kv_row, T(0), grad_q + h * d,
                q_row);
        gemm<T>(true, false, n, d, n, T(1), ds, n, q + h * d, q_row, T(1), grad_k + kv * d, kv_row);
      }
    }
  });
}

template <typename T>
void swiglu_forward(const T* gate, const T* up, std::int64_t count, T* act) {
  for (std::int64_t i = 0; i < count; ++i) {
    const T g = gate[i];
    act[i] = g / (T(1) + std::exp(-g)) * up[i];
  }
}

template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* grad_act, std::int64_t count,
                     T* grad_gate, T* grad_up) {
  for (std::int64_t i = 0; i < count; ++i) {
    const T g = gate[i];
    const T sigmoid = T(1) / (T(1) + std::exp(-g));
    const T silu = g * sigmoid;
    grad_up[i] = grad_act[i] * silu;
    grad_gate[i] = grad_act[i] * up[i] * sigmoid * (T(1) + g * (T(1) - sigmoid));
  }
}

template <typename T>
double cross_entropy_forward_backward(T* logits, const std::int32_t* ids, std::int64_t tokens,
                                      std::int64_t vocab, T weight) {
  double total = 0.0;
  for (std::int64_t t = 0; t < tokens; ++t) {
    T* row = logits + t * vocab;
    if (t + 1 == tokens) {
      std::fill_n(row, vocab, T(0));
      continue;
    }
    const T max_value = *std::max_element(row, row + vocab);
    double sum = 0.0;
    for (std::int64_t i = 0; i < vocab; ++i) {
      row[i] = std::exp(row[i] - max_value);
      sum += static_cast<double>(row[i]);
    }
    const std::int32_t target = ids[t + 1];
    total += std::log(sum) - std::log(static_cast<double>(row[target]));
    const T inverse_sum = static_cast<T>(1.0 / sum);
    for (std::int64_t i = 0; i < vocab; ++i) row[i] *= inverse_sum * weight;
    row[target] -= weight;
  }
  return total;
}

#define UQ_INSTANTIATE_TRAINING_OPS(T)                                                            \
  template void rms_norm_forward<T>(const T*, std::int64_t, std::int64_t, const T*, T, T*, T*);   \
  template void rms_norm_backward<T>(const T*, const T*, std::int64_t, std::int64_t, const T*,    \
                                     const T*, T*);                                               \
  template void rope_rotate<T>(T*, std::int64_t, std::int64_t, std::int64_t,                      \
                               const std::vector<float>&, bool);                                  \
  template void attention_forward<T>(const T*, const T*, const T*, const AttentionDims&, T*, T*); \
  template void attention_backward<T>(const T*, const T*, const T*, const T*, const T*,           \
                                      const AttentionDims&, T*, T*, T*);                          \
  template void swiglu_forward<T>(const T*, const T*, std::int64_t, T*);                          \
  template void swiglu_backward<T>(const T*, const T*, const T*, std::int64_t, T*, T*);           \
  template double cross_entropy_forward_backward<T>(T*, const std::int32_t*, std::int64_t,        \
                                                    std::int64_t, T);

UQ_INSTANTIATE_TRAINING_OPS(float)
UQ_INSTANTIATE_TRAINING_OPS(double)

}  // namespace uq::train
