// The CUDA affine GEMV kernels (persistent, tensor cores, simt, tiled, stream) against a float64
// CPU reference built from the dequantized weights. Fresh random codes, scales, biases and
// activations every run; outputs poisoned (NaN) before each launch. Bounds (fp32 dequantization and
// accumulation; the reference uses the very x values the kernel sees, bf16-rounded for bf16 x; the
// tensor-core kernel splits f32 x into two bf16 parts, 16 significant bits, ~2e-6 relative):
// - relative L2 error ||y - ref|| / ||ref|| <= 3e-5 where a shape has >= 32 outputs per row
//   (1.04e-5 seen on an H200 from the tensor-core kernel's f32 x split and factored sums);
// - for every shape, ||y - ref|| / ||ref_abs|| <= 4e-6, ref_abs = sum_i |x_i w_i|: the scale
//   fp32 rounding works at, robust where few outputs make ||ref|| small by cancellation. The
//   kernels sum scale * (q . x) + bias * sum(x), whose two terms are each up to 2^(bits-1)
//   times the weight's own, so their rounding reaches ~1e-6 (1.4e-6 seen on an H200); one
//   wrong code in a row of n terms moves it by ~1/n >= 1e-4.
// The persistent kernel splits f32 x into 3 bf16 parts for 1-2 rows (exact) and 2 for 3-16;
// bf16 x enters it exactly. It multiplies biased codes F + q (F = 128, 8-bit 2176) and removes
// F * s * sum(x part) per group, so its fp32 partial sums are ~(F + q) / |q - 2^(bits-1)| larger
// than a plain kernel's. bench/cuda/persistent_fold_error_model.py models it on these shapes
// (mma adds truncated to f32, seeds 1-3, every width): worst conditioned 7.9e-7 (unfolded
// 8.5e-7: the 2-part x residue dominates at 3-16 rows), relative L2 9.9e-6 at >= 32 outputs
// (unfolded 9.5e-6), so the same bounds hold with a 3x margin at least.
// The tiled kernel (and automatic where it picks it) rounds weights and x to bf16
// (2^-9 relative each), so it gets the bounds of a bf16 matmul: relative L2 <= 1e-2 and
// conditioned <= 1e-3 (its expected ~1.6e-3 / sqrt(in) for random signs).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.hpp"
#include "core/error.hpp"
#include "kernels/cuda/affine_gemv.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_graph.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/gemv_scratch.hpp"
#include "kernels/cuda/stream.hpp"

namespace {

using uq::cuda::AffineDeviceWeight;
using uq::cuda::AffineHostWeight;
using uq::cuda::DeviceBuffer;
using uq::cuda::GemvKernel;

constexpr double kRelativeL2Bound = 3e-5;
constexpr double kConditionedBound = 4e-6;
constexpr double kBf16RelativeL2Bound = 1e-2;
constexpr double kBf16ConditionedBound = 1e-3;

struct HostAffine {
  int out, in, bits, group_size;
  std::vector<std::uint32_t> codes;
  std::vector<std::uint16_t> scales, biases;

  AffineHostWeight view() const {
    return {"test.weight", out, in, bits, group_size, codes, scales, biases};
  }
  // Element (o, i) of the stream, read bit by bit: independent of the kernel's word logic.
  std::uint32_t code(int o, int i) const {
    std::uint32_t q = 0;
    const std::size_t row_bits = static_cast<std::size_t>(in) * bits;
    for (int b = 0; b < bits; ++b) {
      const std::size_t bit = o * row_bits + static_cast<std::size_t>(i) * bits + b;
      q |= ((codes[bit / 32] >> (bit % 32)) & 1u) << b;
    }
    return q;
  }
  std::vector<double> dequantized() const {
    std::vector<double> w(static_cast<std::size_t>(out) * in);
    for (int o = 0; o < out; ++o)
      for (int i = 0; i < in; ++i) {
        const std::size_t g = static_cast<std::size_t>(o) * (in / group_size) + i / group_size;
        w[static_cast<std::size_t>(o) * in + i] =
            double(uq::bf16_to_f32(scales[g])) * code(o, i) + double(uq::bf16_to_f32(biases[g]));
      }
    return w;
  }
};

HostAffine random_affine(std::mt19937_64& rng, int out, int in, int bits, int group_size) {
  HostAffine w{out, in, bits, group_size, {}, {}, {}};
  w.codes.resize(static_cast<std::size_t>(out) * in * bits / 32);
  for (auto& word : w.codes) word = static_cast<std::uint32_t>(rng());  // every stream is valid
  std::uniform_real_distribution<float> scale(0.002f, 0.05f), jitter(-0.01f, 0.01f);
  const std::size_t groups = static_cast<std::size_t>(out) * in / group_size;
  for (std::size_t g = 0; g < groups; ++g) {
    const float s = scale(rng);
    w.scales.push_back(uq::f32_to_bf16(s));
    w.biases.push_back(uq::f32_to_bf16(-s * float(1 << (bits - 1)) + jitter(rng)));
  }
  return w;
}

bool have_gpu() {
  return uq::cuda::cuda_device_count() > 0;
}

// ||got - want|| / ||scale|| over the first got.size() elements; infinite if any output is
// not finite (unwritten: still poisoned).
double relative_l2(const std::vector<float>& got, const std::vector<double>& want,
                   const std::vector<double>& scale) {
  double err = 0, ref = 0;
  for (std::size_t k = 0; k < got.size(); ++k) {
    if (!std::isfinite(got[k])) return INFINITY;
    err += (got[k] - want[k]) * (got[k] - want[k]);
    ref += scale[k] * scale[k];
  }
  return std::sqrt(err / ref);
}

struct Reference {
  std::vector<double> y, y_abs;  // sum_i x_i w_i and sum_i |x_i w_i|, [rows, out]
};

std::vector<int> rows_up_to(int max_rows) {
  std::vector<int> rows(static_cast<std::size_t>(max_rows));
  for (int r = 0; r < max_rows; ++r) rows[static_cast<std::size_t>(r)] = r + 1;
  return rows;
}

// Runs each row count of row_counts (ascending), every kernel, x as f32 and bf16 on one
// uploaded weight.
void check_weight(std::mt19937_64& rng, int out, int in, int bits, int group_size,
                  const std::vector<int>& row_counts) {
  const int max_rows = row_counts.back();
  SCOPED_TRACE("out " + std::to_string(out) + " in " + std::to_string(in) + " bits " +
               std::to_string(bits) + " group " + std::to_string(group_size));
  const HostAffine host = random_affine(rng, out, in, bits, group_size);
  const AffineDeviceWeight weight(host.view());
  const std::vector<double> w = host.dequantized();

  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x_f32(static_cast<std::size_t>(max_rows) * in);
  std::vector<std::uint16_t> x_bf16(x_f32.size());
  for (std::size_t k = 0; k < x_f32.size(); ++k) {
    x_f32[k] = normal(rng);
    x_bf16[k] = uq::f32_to_bf16(x_f32[k]);
  }
  auto reference = [&](auto x_value) {
    const std::size_t n = static_cast<std::size_t>(max_rows) * out;
    Reference ref{std::vector<double>(n), std::vector<double>(n)};
    for (int r = 0; r < max_rows; ++r)
      for (int o = 0; o < out; ++o) {
        double sum = 0, sum_abs = 0;
        for (int i = 0; i < in; ++i) {
          const double term = x_value(static_cast<std::size_t>(r) * in + i) *
                              w[static_cast<std::size_t>(o) * in + i];
          sum += term;
          sum_abs += std::abs(term);
        }
        ref.y[static_cast<std::size_t>(r) * out + o] = sum;
        ref.y_abs[static_cast<std::size_t>(r) * out + o] = sum_abs;
      }
    return ref;
  };
  const auto ref_f32 = reference([&](std::size_t k) { return double(x_f32[k]); });
  const auto ref_bf16 =
      reference([&](std::size_t k) { return double(uq::bf16_to_f32(x_bf16[k])); });

  DeviceBuffer<float> x_dev_f32(x_f32.size());
  DeviceBuffer<__nv_bfloat16> x_dev_bf16(x_bf16.size());
  x_dev_f32.upload(x_f32);
  UQ_CUDA_CHECK(
      cudaMemcpy(x_dev_bf16.data(), x_bf16.data(), x_dev_bf16.bytes(), cudaMemcpyHostToDevice));
  DeviceBuffer<float> y_dev(static_cast<std::size_t>(max_rows) * out);

  for (const int rows : row_counts) {
    SCOPED_TRACE("rows " + std::to_string(rows));
    const std::size_t n = static_cast<std::size_t>(rows) * out;
    for (int variant = 0; variant < 14; ++variant) {
      const bool use_bf16 = variant % 2 == 1;
      constexpr GemvKernel kKernels[] = {
          GemvKernel::persistent, GemvKernel::tensor_cores, GemvKernel::simt,     GemvKernel::tiled,
          GemvKernel::stream,     GemvKernel::stream_mma,   GemvKernel::automatic};
      constexpr const char* kNames[] = {", persistent", ", tensor cores", ", simt",     ", tiled",
                                        ", stream",     ", stream_mma",   ", automatic"};
      const GemvKernel kernel = kKernels[variant / 2];
      const bool bf16_product =
          kernel == GemvKernel::tiled ||
          (kernel == GemvKernel::automatic &&
           uq::cuda::automatic_gemv_kernel(rows, out, in, bits, group_size) == GemvKernel::tiled);
      const std::string what = std::string(use_bf16 ? "x bf16" : "x f32") + kNames[variant / 2];
      y_dev.fill_bytes(0xFF);  // NaN everywhere: an unwritten output fails the check
      if (use_bf16)
        uq::cuda::affine_gemv_cuda(weight, x_dev_bf16.data(), rows, y_dev.data(), nullptr, kernel);
      else
        uq::cuda::affine_gemv_cuda(weight, x_dev_f32.data(), rows, y_dev.data(), nullptr, kernel);
      UQ_CUDA_CHECK(cudaDeviceSynchronize());
      std::vector<float> y(y_dev.size());
      y_dev.download(y);
      y.resize(n);
      const Reference& ref = use_bf16 ? ref_bf16 : ref_f32;
      EXPECT_LE(relative_l2(y, ref.y, ref.y_abs),
                bf16_product ? kBf16ConditionedBound : kConditionedBound)
          << what;
      if (out >= 32) {
        EXPECT_LE(relative_l2(y, ref.y, ref.y),
                  bf16_product ? kBf16RelativeL2Bound : kRelativeL2Bound)
            << what;
      }
      // Outputs beyond `rows` must stay untouched (still the NaN poison).
      std::vector<float> full(y_dev.size());
      y_dev.download(full);
      for (std::size_t k = n; k < full.size(); ++k) ASSERT_TRUE(std::isnan(full[k])) << what << k;
    }
  }
}

class AffineGemvCuda : public testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU";
  }
};

TEST_P(AffineGemvCuda, MatchesFloat64ReferenceForEveryGroupSizeAndRowCount) {
  const int bits = GetParam();
  std::mt19937_64 rng(std::random_device{}());
  for (int group : {32, 64, 128}) {
    // in = 5 and 11 groups: for g32/g64 a partial last atom (and unaligned rows for odd bits).
    check_weight(rng, 37, 5 * group, bits, group, rows_up_to(16));
    check_weight(rng, 203, 11 * group, bits, group, rows_up_to(16));
    // More than 32 atoms: lanes loop; out = 1 leaves most warps of the block idle.
    check_weight(rng, 1, 4224 + group, bits, group, rows_up_to(3));
    check_weight(rng, 9, 4224 + group, bits, group, rows_up_to(5));
  }
}

// Shapes the stream kernel takes (asserted): one partial slice (in 256), three full slices and a
// half one (in 3584: the last warp's upper lanes hold no codes), and every width and group;
// odd `out` leaves the last block short.
TEST_P(AffineGemvCuda, StreamKernelMatchesFloat64ReferenceWhereItRuns) {
  const int bits = GetParam();
  std::mt19937_64 rng(std::random_device{}());
  for (int group : {32, 64, 128})
    for (const auto& [out, in] : {std::pair{37, 256}, std::pair{203, 3584}}) {
      const HostAffine probe = random_affine(rng, 1, in, bits, group);
      ASSERT_TRUE(uq::cuda::stream_gemv_supported(AffineDeviceWeight(probe.view())))
          << "bits " << bits << " group " << group << " in " << in;
      check_weight(rng, out, in, bits, group, {1, 2, 3});
    }
}

// Shapes the tensor-core stream kernel takes (asserted) at every width and group it supports:
// one slice (in 256), 14 (in 3584), 17 in two passes of 9 warps (the second pass leaves one warp
// without a slice) and 56 in four passes of 14 (in 14336, down_proj's); odd `out` leaves the
// last 16-row tile short. Other widths, and 2 bits in groups of 32, it declines (forced, they
// run the stream kernel: the kernel loop of check_weight).
// Sets whether the tensor-core stream kernel splits passes over a cluster, for one scope.
struct PassSplit {
  explicit PassSplit(bool enabled) { uq::cuda::set_mma_stream_pass_split_enabled(enabled); }
  ~PassSplit() { uq::cuda::set_mma_stream_pass_split_enabled(true); }
  PassSplit(const PassSplit&) = delete;
  PassSplit& operator=(const PassSplit&) = delete;
};

TEST_P(AffineGemvCuda, StreamMmaKernelMatchesFloat64ReferenceWhereItRuns) {
  const int bits = GetParam();
  std::mt19937_64 rng(std::random_device{}());
  if (bits != 2 && bits != 4 && bits != 8) {
    const HostAffine probe = random_affine(rng, 1, 256, bits, 64);
    EXPECT_FALSE(uq::cuda::mma_stream_gemv_supported(AffineDeviceWeight(probe.view())));
    return;
  }
  for (int group : {32, 64, 128}) {
    if (bits * group < 128) {  // a lane's codes of a group would not be whole words
      const HostAffine probe = random_affine(rng, 1, 256, bits, group);
      EXPECT_FALSE(uq::cuda::mma_stream_gemv_supported(AffineDeviceWeight(probe.view())));
      continue;
    }
    for (const auto& [out, in] :
         {std::pair{37, 256}, std::pair{203, 3584}, std::pair{45, 4352}, std::pair{77, 14336}}) {
      const HostAffine probe = random_affine(rng, 1, in, bits, group);
      ASSERT_TRUE(uq::cuda::mma_stream_gemv_supported(AffineDeviceWeight(probe.view())))
          << "bits " << bits << " group " << group << " in " << in;
      check_weight(rng, out, in, bits, group, {1, 2, 3});
    }
  }
  // The multi-pass shapes above ran their passes split over a cluster; here in one block each
  // (as where no cluster fits), and 9 passes (in 36864), never split (clusters stop at 8).
  {
    const PassSplit off(false);
    check_weight(rng, 45, 4352, bits, 64, {1, 2});
    check_weight(rng, 77, 14336, bits, 64, {1, 2});
  }
  check_weight(rng, 21, 36864, bits, 64, {1, 2});
}

INSTANTIATE_TEST_SUITE_P(Bits, AffineGemvCuda, testing::Values(2, 3, 4, 5, 6, 8));

// A block of the tensor-core stream kernel reduces its slices' partial sums every 24 tiles: an
// output long enough for 25 tiles per block on a 132-SM device (one 16-warp block per SM; more
// on fewer SMs), with a short last tile.
TEST(AffineGemvCudaRows, StreamMmaKernelReducesInChunks) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU";
  std::mt19937_64 rng(std::random_device{}());
  check_weight(rng, 132 * 25 * 16 - 11, 4096, 4, 64, {1, 2});
}

TEST(AffineGemvCudaRows, MoreThanSixteenRowsRunInPasses) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU";
  std::mt19937_64 rng(std::random_device{}());
  check_weight(rng, 45, 256, 4, 64, rows_up_to(37));
}

// Prompt-sized: partial tiles along out (128-row tiles) and rows (128-row tiles), `in` with a
// half step at the end (in % 64 == 32: codes and scales past the row end must read as zeros,
// and 2- and 6-bit rows then start off 16 bytes, the word-by-word copy path), several full
// 128-row tiles (512), every width.
TEST_P(AffineGemvCuda, TiledMatchesFloat64ReferenceForPromptSizedRows) {
  const int bits = GetParam();
  std::mt19937_64 rng(std::random_device{}());
  check_weight(rng, 300, 7 * 32, bits, 32, {17, 128, 131});
  check_weight(rng, 129, 3 * 128, bits, 128, {37, 64, 257, 512});
  check_weight(rng, 5, 2 * 64, bits, 64, {200});
}

// The persistent and stream kernels' accumulate (y += x W^T) and fused input modes (RMSNorm of
// h, SwiGLU of gate|up) against float64 references computed from the same f32 inputs; the transform
// itself is fp32 (expf, rsqrt), ~1e-7 relative, well inside the bounds above.
void check_fused(std::mt19937_64& rng, int out, int in, int bits, int group_size, int rows,
                 GemvKernel kernel = GemvKernel::persistent) {
  SCOPED_TRACE("out " + std::to_string(out) + " in " + std::to_string(in) + " bits " +
               std::to_string(bits) + " group " + std::to_string(group_size) + " rows " +
               std::to_string(rows) +
               (kernel == GemvKernel::stream       ? " stream"
                : kernel == GemvKernel::stream_mma ? " stream_mma"
                                                   : ""));
  const HostAffine host = random_affine(rng, out, in, bits, group_size);
  const AffineDeviceWeight weight(host.view());
  if (kernel == GemvKernel::stream) {
    ASSERT_TRUE(uq::cuda::stream_gemv_supported(weight));
  }
  if (kernel == GemvKernel::stream_mma) {
    ASSERT_TRUE(uq::cuda::mma_stream_gemv_supported(weight));
  }
  const std::vector<double> w = host.dequantized();
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> positive(0.5f, 1.5f);
  const auto n_in = static_cast<std::size_t>(rows) * in;
  std::vector<float> h(2 * n_in), gamma(static_cast<std::size_t>(in)),
      y0(static_cast<std::size_t>(rows) * out);
  for (auto& v : h) v = 3.0f * normal(rng);
  for (auto& v : gamma) v = positive(rng);
  for (auto& v : y0) v = normal(rng);
  constexpr float kEps = 1e-5f;

  // x as each mode defines it, in float64.
  auto x_of = [&](uq::cuda::GemvInputMode mode) {
    std::vector<double> x(n_in);
    for (int r = 0; r < rows; ++r) {
      double squares = 0;
      for (int i = 0; i < in; ++i)
        squares += double(h[r * std::size_t(in) + i]) * h[r * std::size_t(in) + i];
      const double inverse_rms = 1.0 / std::sqrt(squares / in + kEps);
      for (int i = 0; i < in; ++i) {
        const std::size_t k = static_cast<std::size_t>(r) * in + i;
        if (mode == uq::cuda::GemvInputMode::rmsnorm) {
          x[k] = double(h[k]) * inverse_rms * gamma[static_cast<std::size_t>(i)];
        } else if (mode == uq::cuda::GemvInputMode::swiglu) {
          const double gate = h[static_cast<std::size_t>(r) * 2 * in + i];
          const double up = h[static_cast<std::size_t>(r) * 2 * in + in + i];
          x[k] = gate / (1.0 + std::exp(-gate)) * up;
        } else {
          x[k] = h[k];
        }
      }
    }
    return x;
  };

  DeviceBuffer<float> h_dev(h.size()), gamma_dev(gamma.size()), y_dev(y0.size());
  h_dev.upload(h);
  gamma_dev.upload(gamma);
  for (const auto mode : {uq::cuda::GemvInputMode::plain, uq::cuda::GemvInputMode::rmsnorm,
                          uq::cuda::GemvInputMode::swiglu}) {
    for (const bool accumulate : {false, true}) {
      SCOPED_TRACE("mode " + std::to_string(int(mode)) + (accumulate ? " accumulate" : ""));
      const std::vector<double> x = x_of(mode);
      std::vector<double> want(y0.size()), scale(y0.size());
      for (int r = 0; r < rows; ++r)
        for (int o = 0; o < out; ++o) {
          double sum = 0, sum_abs = 0;
          for (int i = 0; i < in; ++i) {
            const double term =
                x[static_cast<std::size_t>(r) * in + i] * w[static_cast<std::size_t>(o) * in + i];
            sum += term;
            sum_abs += std::abs(term);
          }
          const std::size_t k = static_cast<std::size_t>(r) * out + o;
          want[k] = sum + (accumulate ? y0[k] : 0.0);
          scale[k] = sum_abs + (accumulate ? std::abs(y0[k]) : 0.0);
        }
      if (accumulate)
        y_dev.upload(y0);
      else
        y_dev.fill_bytes(0xFF);
      uq::cuda::affine_gemv_fused_cuda(weight, h_dev.data(), rows, y_dev.data(), nullptr,
                                       {mode, gamma_dev.data(), kEps}, accumulate, nullptr, kernel);
      UQ_CUDA_CHECK(cudaDeviceSynchronize());
      std::vector<float> y(y0.size());
      y_dev.download(y);
      EXPECT_LE(relative_l2(y, want, scale), kConditionedBound);
      EXPECT_LE(relative_l2(y, want, want), kRelativeL2Bound);
    }
  }
}

TEST(AffineGemvCudaFused, AccumulateRmsNormAndSwiGluMatchFloat64Reference) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU";
  std::mt19937_64 rng(std::random_device{}());
  for (int bits : {2, 3, 4, 8})
    for (int rows : {1, 2, 5, 16}) check_fused(rng, 93, 9 * 64, bits, 64, rows);
  check_fused(rng, 300, 4 * 128, 6, 128, 3);
  check_fused(rng, 47, 7 * 32, 5, 32, 9);
  // The stream kernel's own fusion: gamma * h with 1 / rms(h) applied to the row sums, SwiGLU
  // while loading x; a partial slice (in 3584) and one slice (in 512).
  for (int bits : {2, 3, 4, 5, 6, 8})
    for (int rows : {1, 2}) {
      check_fused(rng, 93, 3584, bits, 64, rows, GemvKernel::stream);
      check_fused(rng, 41, 512, bits, bits == 3 ? 128 : 32, rows, GemvKernel::stream);
    }
  // The tensor-core stream kernel's: 14 slices of 256 (in 3584, g64), 2 (in 512, g128: two
  // groups per slice) and four passes (in 14336, split over a cluster and in one block: SwiGLU
  // and accumulate across passes; its RMSNorm runs on the SIMT stream kernel there).
  for (int bits : {2, 4, 8})
    for (int rows : {1, 2}) {
      check_fused(rng, 93, 3584, bits, 64, rows, GemvKernel::stream_mma);
      check_fused(rng, 41, 512, bits, 128, rows, GemvKernel::stream_mma);
    }
  check_fused(rng, 64, 14336, 4, 64, 2, GemvKernel::stream_mma);
  const PassSplit off(false);  // the four passes in one block
  check_fused(rng, 64, 14336, 4, 64, 2, GemvKernel::stream_mma);
}

TEST(AffineGemvCudaFused, RejectsRowCountsBeyondSixteen) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU";
  std::mt19937_64 rng(3);
  const HostAffine host = random_affine(rng, 16, 64, 4, 64);
  const AffineDeviceWeight weight(host.view());
  DeviceBuffer<float> x(17 * 64), y(17 * 16);
  EXPECT_THROW(uq::cuda::affine_gemv_fused_cuda(weight, x.data(), 17, y.data(), nullptr, {}),
               uq::Error);
}

TEST(AffineGemvCudaErrors, RejectsBadShapesNamingTheTensor) {
  std::mt19937_64 rng(1);
  HostAffine w = random_affine(rng, 4, 128, 4, 64);
  auto expect_error = [](AffineHostWeight view, const std::string& fragment) {
    try {
      uq::cuda::validate_affine_weight(view);
      ADD_FAILURE() << "no error for " << fragment;
    } catch (const uq::Error& e) {
      EXPECT_NE(std::string(e.what()).find("test.weight"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  AffineHostWeight v = w.view();
  v.bits = 7;
  expect_error(v, "bits 7");
  v = w.view();
  v.group_size = 48;
  expect_error(v, "group size 48");
  v = w.view();
  v.in = 96;
  expect_error(v, "not a multiple");
  v = w.view();
  v.codes = v.codes.subspan(1);
  expect_error(v, "code words");
  v = w.view();
  v.scales = v.scales.subspan(1);
  expect_error(v, "scales");
  v = w.view();
  v.biases = {};
  expect_error(v, "biases");
  v = w.view();
  v.out = 0;
  expect_error(v, "empty");
  EXPECT_NO_THROW(uq::cuda::validate_affine_weight(w.view()));
}

TEST(CudaCheck, TurnsErrorsIntoUqErrorNamingCallAndPlace) {
  try {
    UQ_CUDA_CHECK(cudaErrorInvalidValue);
    FAIL() << "no error";
  } catch (const uq::Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("cuda: cudaErrorInvalidValue failed: ", 0), 0u) << message;
    EXPECT_NE(message.find("invalid argument"), std::string::npos) << message;
    EXPECT_NE(message.find("test_affine_gemv.cpp:"), std::string::npos) << message;
  }
  EXPECT_THROW(UQ_CUDA_CHECK(CUBLAS_STATUS_INVALID_VALUE), uq::Error);
}

TEST(CudaDevice, CountNeverThrowsAndPropertiesAreReadOffTheDevice) {
  const int count = uq::cuda::cuda_device_count();
  EXPECT_GE(count, 0);
  EXPECT_THROW(uq::cuda::device_properties(count), uq::Error);
  if (count == 0) GTEST_SKIP() << "no CUDA GPU";
  const auto props = uq::cuda::device_properties(0);
  EXPECT_FALSE(props.name.empty());
  EXPECT_GT(props.multiprocessors, 0);
  EXPECT_GT(props.l2_cache_bytes, 0u);
  EXPECT_GT(props.global_memory_bytes, 0u);
}

TEST(DeviceBufferCuda, RoundTripsAndRejectsSizeMismatch) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU";
  std::vector<int> data(1000);
  for (int k = 0; k < 1000; ++k) data[k] = k * 7 - 3;
  DeviceBuffer<int> buffer(data.size());
  buffer.upload(data);
  DeviceBuffer<int> moved = std::move(buffer);
  EXPECT_EQ(buffer.data(), nullptr);
  std::vector<int> back(data.size());
  moved.download(back);
  EXPECT_EQ(back, data);
  std::vector<int> wrong(3);
  EXPECT_THROW(moved.download(wrong), uq::Error);
}

}  // namespace

// y = x W^T in float64 from the dequantized weight: {sum, sum of |terms|} per output.
Reference reference_product(const HostAffine& host, const std::vector<float>& x, int rows) {
  const std::vector<double> w = host.dequantized();
  const std::size_t n = static_cast<std::size_t>(rows) * host.out;
  Reference ref{std::vector<double>(n), std::vector<double>(n)};
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < host.out; ++o) {
      double sum = 0, sum_abs = 0;
      for (int i = 0; i < host.in; ++i) {
        const double term = double(x[static_cast<std::size_t>(r) * host.in + i]) *
                            w[static_cast<std::size_t>(o) * host.in + i];
        sum += term;
        sum_abs += std::abs(term);
      }
      ref.y[static_cast<std::size_t>(r) * host.out + o] = sum;
      ref.y_abs[static_cast<std::size_t>(r) * host.out + o] = sum_abs;
    }
  return ref;
}

// One persistent product with caller-owned scratch and its float64 reference.
struct ScratchProduct {
  HostAffine host;
  AffineDeviceWeight weight;
  int rows;
  DeviceBuffer<float> x, y;
  Reference ref;

  ScratchProduct(std::mt19937_64& rng, int out, int in, int rows_)
      : host(random_affine(rng, out, in, 4, 64)),
        weight(host.view()),
        rows(rows_),
        x(static_cast<std::size_t>(rows_) * in),
        y(static_cast<std::size_t>(rows_) * out) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> host_x(x.size());
    for (auto& v : host_x) v = normal(rng);
    x.upload(host_x);
    ref = reference_product(host, host_x, rows);
  }
  void enqueue(cudaStream_t stream, uq::cuda::GemvScratch& scratch) {
    uq::cuda::affine_gemv_cuda(weight, x.data(), rows, y.data(), stream, GemvKernel::persistent,
                               false, &scratch);
  }
  void expect_correct(const std::string& what) const {
    std::vector<float> got(y.size());
    y.download(got);
    EXPECT_LE(relative_l2(got, ref.y, ref.y_abs), kConditionedBound) << what;
    EXPECT_LE(relative_l2(got, ref.y, ref.y), kRelativeL2Bound) << what;
  }
};

// The decoder's pattern: one eager step sizes the scratch, a captured graph replays products that
// all share it (the second product's prologue overwrites what the first main kernel read: safe
// only if it waits for it), and the scratch growing later must not free what the graph uses.
TEST(AffineGemvCudaScratch, SharedByTwoProductsInOneGraphAndKeptAliveWhenGrowing) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU";
  std::mt19937_64 rng(std::random_device{}());
  // 16 rows: 4 n-tiles (the largest fragments of this `in`); 1 row: 1 n-tile, 3 parts.
  ScratchProduct big(rng, 203, 11 * 64, 16), small(rng, 300, 9 * 64, 1);
  const uq::cuda::Stream stream;
  uq::cuda::GemvScratch scratch;
  big.enqueue(stream.get(), scratch);
  stream.synchronize();
  const std::size_t sized = scratch.capacity();
  ASSERT_GT(sized, 0u);

  uq::cuda::CapturedGraph graph;
  graph.capture(stream.get(), [&] {
    big.enqueue(stream.get(), scratch);
    small.enqueue(stream.get(), scratch);
    big.enqueue(stream.get(), scratch);  // rewrites the fragments `small` just read
  });
  EXPECT_EQ(scratch.capacity(), sized) << "captured products must reuse the sized scratch";
  for (int replay = 0; replay < 2; ++replay) {
    big.y.fill_bytes(0xFF);
    small.y.fill_bytes(0xFF);
    graph.launch(stream.get());
    stream.synchronize();
    big.expect_correct("graph replay " + std::to_string(replay) + ", 16 rows");
    small.expect_correct("graph replay " + std::to_string(replay) + ", 1 row");
    if (replay == 0) {
      // A longer `in` grows the scratch eagerly; the graph still holds the first buffer.
      ScratchProduct longer(rng, 64, 4224 + 64, 16);
      longer.enqueue(stream.get(), scratch);
      stream.synchronize();
      EXPECT_GT(scratch.capacity(), sized);
      longer.expect_correct("eager product that grew the scratch");
    }
  }

  // Capturing with a scratch too small: stream-ordered memory instead, same results.
  uq::cuda::GemvScratch empty;
  uq::cuda::CapturedGraph fallback;
  fallback.capture(stream.get(), [&] { big.enqueue(stream.get(), empty); });
  EXPECT_EQ(empty.capacity(), 0u);
  big.y.fill_bytes(0xFF);
  fallback.launch(stream.get());
  stream.synchronize();
  big.expect_correct("captured with an empty scratch");
}
