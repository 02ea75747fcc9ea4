// The affine CPU kernels: every SIMD path against the scalar reference, and
// every product against a float64 reference built from the dequantized weight.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/thread_pool.hpp"
#include "kernels/cpu/affine_gemv_int8.hpp"
#include "kernels/cpu/affine_kernels.hpp"
#include "quant/affine.hpp"
#include "quant/affine_weight.hpp"
#include "support/random_affine.hpp"

namespace uq {
namespace {

using cpu::KernelIsa;

// y = x · Wᵀ in float64 from the scalar-dequantized weight, and for each
// output the magnitude Σ_g (|s|·Σ|q·x| + |b|·Σ|x|) that bounds float rounding.
struct Reference {
  std::vector<double> y;
  std::vector<double> magnitude;
};

Reference reference_product(const AffineWeight& w, const std::vector<float>& x, std::int64_t rows) {
  const auto m = w.matrix();
  std::vector<float> deq(static_cast<std::size_t>(m.out * m.in));
  cpu::affine_dequantize_rows(m, 0, m.out, deq.data(), KernelIsa::Scalar);
  Reference ref{std::vector<double>(static_cast<std::size_t>(rows * m.out)),
                std::vector<double>(static_cast<std::size_t>(rows * m.out))};
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t o = 0; o < m.out; ++o) {
      double sum = 0.0;
      double magnitude = 0.0;
      for (std::int64_t i = 0; i < m.in; ++i) {
        const auto g = o * m.groups_per_row() + i / m.group_size;
        const double xi = x[r * m.in + i];
        sum += static_cast<double>(deq[o * m.in + i]) * xi;
        const double s = load_param(m.scales, m.param_dtype, g);
        const double b = load_param(m.biases, m.param_dtype, g);
        magnitude +=
            (std::abs(s) * unpack_code(m.codes + o * m.words_per_row(), i, m.bits) + std::abs(b)) *
            std::abs(xi);
      }
      ref.y[r * m.out + o] = sum;
      ref.magnitude[r * m.out + o] = magnitude;
    }
  }
  return ref;
}

// float32 accumulation over `in` terms in any order: relative 1e-5 of the
// magnitude (K ≤ 1024: K·2^-24 ≈ 6e-5 worst case, ~1e-6 typical) plus 1e-6.
void expect_close(const std::vector<float>& y, const Reference& ref, const std::string& what) {
  for (std::size_t i = 0; i < y.size(); ++i) {
    ASSERT_NEAR(y[i], ref.y[i], 1e-5 * ref.magnitude[i] + 1e-6) << what << " at " << i;
  }
}

std::string describe(int bits, int group, DType dtype, std::int64_t out, std::int64_t in,
                     std::int64_t rows) {
  return "bits " + std::to_string(bits) + " group " + std::to_string(group) + " " +
         std::string(dtype_name(dtype)) + " out " + std::to_string(out) + " in " +
         std::to_string(in) + " rows " + std::to_string(rows);
}

TEST(AffineKernels, CpuHasTheAvx2Path) {
  if (!__builtin_cpu_supports("avx2")) GTEST_SKIP() << "no AVX2 on this CPU";
  EXPECT_EQ(cpu::best_kernel_isa(), KernelIsa::Avx2);
}

TEST(AffineKernels, EveryGemvAndGemmPathMatchesTheReference) {
  std::mt19937 rng(42);
  for (int bits = 1; bits <= 8; ++bits) {
    for (int group : {32, 64, 128}) {
      for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
        const std::int64_t out = 13 + bits;  // not a multiple of 4 or 8
        const std::int64_t in = group * 3;
        const auto w = test::random_affine_weight(out, in, bits, group, dtype, rng);
        for (std::int64_t rows : {1, 2, 3, 7, 8, 9, 33}) {
          const auto what = describe(bits, group, dtype, out, in, rows);
          const auto x = test::random_activations(rows, in, rng);
          const auto ref = reference_product(*w, x, rows);
          std::vector<float> scalar(static_cast<std::size_t>(rows * out));
          std::vector<float> avx2(scalar.size()), gemm(scalar.size()), gemm_scalar(scalar.size());
          cpu::affine_gemv(w->matrix(), x.data(), rows, scalar.data(), KernelIsa::Scalar);
          cpu::affine_gemv(w->matrix(), x.data(), rows, avx2.data(), KernelIsa::Avx2);
          cpu::affine_gemm(w->matrix(), x.data(), rows, gemm.data(), KernelIsa::Avx2);
          cpu::affine_gemm(w->matrix(), x.data(), rows, gemm_scalar.data(), KernelIsa::Scalar);
          expect_close(scalar, ref, "scalar gemv " + what);
          expect_close(avx2, ref, "avx2 gemv " + what);
          expect_close(gemm, ref, "avx2 gemm " + what);
          expect_close(gemm_scalar, ref, "scalar gemm " + what);
          // SIMD vs scalar directly: both are float32 sums of the same terms.
          for (std::size_t i = 0; i < avx2.size(); ++i) {
            ASSERT_NEAR(avx2[i], scalar[i], 1e-5 * ref.magnitude[i] + 1e-6) << what;
          }
        }
      }
    }
  }
}

TEST(AffineKernels, DequantizeAvx2EqualsScalarUpToFmaRounding) {
  std::mt19937 rng(5);
  for (int bits = 1; bits <= 8; ++bits) {
    const auto w = test::random_affine_weight(11, 256, bits, 64, DType::BF16, rng);
    std::vector<float> scalar(11 * 256), avx2(11 * 256);
    cpu::affine_dequantize_rows(w->matrix(), 2, 9, scalar.data(), KernelIsa::Scalar);
    cpu::affine_dequantize_rows(w->matrix(), 2, 9, avx2.data(), KernelIsa::Avx2);
    for (std::size_t i = 0; i < 9 * 256; ++i) {
      // s·q + b rounded once (FMA) or twice: at most 1 ulp of |s·q| + |b| ≤ 0.1·255 + 0.5.
      ASSERT_NEAR(avx2[i], scalar[i], 26.0 * 1.2e-7) << "bits " << bits << " at " << i;
    }
  }
}

TEST(AffineKernels, LargerShapesThroughWeightMatmul) {
  // The exact float GEMV; the int8-activation one is test_affine_gemv_int8.cpp's.
  const bool was_exact = cpu::exact_gemv();
  cpu::set_exact_gemv(true);
  std::mt19937 rng(9);
  for (int bits : {3, 4, 8}) {
    const std::int64_t out = 300;
    const std::int64_t in = 1024;
    const auto w = test::random_affine_weight(out, in, bits, 128, DType::BF16, rng);
    for (std::int64_t rows : {1, 4, 12}) {
      const auto x = test::random_activations(rows, in, rng);
      std::vector<float> y(static_cast<std::size_t>(rows * out));
      w->matmul(x.data(), rows, y.data());
      expect_close(y, reference_product(*w, x, rows),
                   describe(bits, 128, DType::BF16, out, in, rows));
    }
  }
  cpu::set_exact_gemv(was_exact);
}

TEST(AffineKernels, ThreadCountDoesNotChangeTheResult) {
  std::mt19937 rng(13);
  const auto w = test::random_affine_weight(203, 512, 5, 64, DType::F16, rng);
  const auto x = test::random_activations(3, 512, rng);
  const int threads = num_threads();
  std::vector<float> one(3 * 203), many(3 * 203);
  set_num_threads(1);
  w->matmul(x.data(), 3, one.data());
  set_num_threads(std::max(2, threads));
  w->matmul(x.data(), 3, many.data());
  set_num_threads(threads);
  EXPECT_EQ(one, many);  // each output row is computed the same way by any thread
}

TEST(AffineKernels, QuantizedMatmulApproximatesTheFloatProduct) {
  // End to end: quantize a float matrix at 8 bits, multiply, compare with the
  // float product; the error is bounded by the quantization step.
  std::mt19937 rng(17);
  const std::int64_t out = 64;
  const std::int64_t in = 256;
  auto wf = test::random_activations(out, in, rng);
  const auto x = test::random_activations(2, in, rng);
  const auto w = AffineWeight::quantize(wf.data(), DType::F32, out, in, 8, 64, "w");
  std::vector<float> y(2 * out);
  w->matmul(x.data(), 2, y.data());
  for (std::int64_t r = 0; r < 2; ++r) {
    for (std::int64_t o = 0; o < out; ++o) {
      double exact = 0.0;
      double abs_x = 0.0;
      for (std::int64_t i = 0; i < in; ++i) {
        exact += static_cast<double>(wf[o * in + i]) * x[r * in + i];
        abs_x += std::abs(x[r * in + i]);
      }
      // |Δw| ≤ one step ≤ range/255 ≤ 10/255 for N(0,1) weights.
      EXPECT_NEAR(y[r * out + o], exact, abs_x * 10.0 / 255.0) << r << ", " << o;
    }
  }
}

}  // namespace
}  // namespace uq
