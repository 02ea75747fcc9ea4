// Affine GEMV/GEMM throughput against the machine's memory read bandwidth and
// OpenBLAS. GEMV weights rotate through copies totalling >= 256 MiB so every
// iteration streams its weight from DRAM, not from the 32 MiB L3.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <immintrin.h>

#include <memory>
#include <random>
#include <vector>

#include "core/dtype.hpp"
#include "core/thread_pool.hpp"
#include "kernels/cpu/affine_gemv_int8.hpp"
#include "kernels/cpu/affine_kernels.hpp"
#include "quant/affine.hpp"
#include "quant/affine_weight.hpp"
#include "support/random_floats.hpp"

namespace {

constexpr std::size_t kRotationBytes = std::size_t{256} << 20;

void use_threads(int threads) {
  uq::set_num_threads(threads);
  openblas_set_num_threads(threads);
}

using uq::bench::random_floats;

// Copies of one random weight, enough of them to defeat the caches.
std::vector<std::unique_ptr<uq::AffineWeight>> rotating_weights(std::int64_t out, std::int64_t in,
                                                                int bits, int group) {
  std::mt19937 rng(1);
  std::vector<std::uint32_t> codes(
      static_cast<std::size_t>(out * uq::affine_words_per_row(in, bits)));
  for (auto& c : codes) c = static_cast<std::uint32_t>(rng());
  const auto groups = static_cast<std::size_t>(out * (in / group));
  std::vector<std::uint16_t> params(groups);
  for (auto& p : params) p = uq::f32_to_bf16(0.01f);
  const std::span<const std::byte> param_bytes(reinterpret_cast<const std::byte*>(params.data()),
                                               params.size() * 2);
  const std::size_t bytes = codes.size() * 4 + 2 * param_bytes.size();
  std::vector<std::unique_ptr<uq::AffineWeight>> copies;
  for (std::size_t total = 0; total < kRotationBytes || copies.size() < 2; total += bytes) {
    copies.push_back(uq::AffineWeight::from_packed(out, in, bits, group, codes, uq::DType::BF16,
                                                   param_bytes, param_bytes, "bench"));
  }
  return copies;
}

// The decode GEMV paths: the exact float GEMV, the int8-activation GEMV with
// AVX2 dot products, and with the best dot products (what affine_matmul runs).
enum GemvPath { kFloat = 0, kInt8Avx2 = 1, kInt8Best = 2 };

// Args: out, in, bits, threads, path.
void BM_AffineGemv(benchmark::State& state) {
  const auto out = state.range(0);
  const auto in = state.range(1);
  use_threads(static_cast<int>(state.range(3)));
  const auto weights = rotating_weights(out, in, static_cast<int>(state.range(2)), 64);
  const auto x = random_floats(static_cast<std::size_t>(in), 2);
  std::vector<float> y(static_cast<std::size_t>(out));
  const auto path = static_cast<GemvPath>(state.range(4));
  std::size_t next = 0;
  for (auto _ : state) {
    const auto& w = *weights[next];
    if (path == kInt8Avx2) {
      uq::cpu::affine_gemv_int8(w.matrix(), x.data(), 1, y.data(), uq::cpu::DotIsa::Avx2);
    } else if (path == kInt8Best) {
      uq::cpu::affine_gemv_int8(w.matrix(), x.data(), 1, y.data(), uq::cpu::best_dot_isa());
    } else {
      uq::cpu::affine_gemv(w.matrix(), x.data(), 1, y.data(), uq::cpu::best_kernel_isa());
    }
    next = (next + 1) % weights.size();
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(
      static_cast<std::int64_t>(state.iterations() * weights[0]->storage_bytes()));
}
BENCHMARK(BM_AffineGemv)
    ->ArgNames({"out", "in", "bits", "threads", "path"})
    ->ArgsProduct({{4096, 14336}, {4096}, {4, 8}, {1, 2}, {kFloat, kInt8Avx2, kInt8Best}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// Reads a 1 GiB buffer (sum of floats), split over `threads`.
void BM_MemoryRead(benchmark::State& state) {
  use_threads(static_cast<int>(state.range(0)));
  const std::size_t count = (std::size_t{1} << 30) / sizeof(float);
  std::vector<float> buffer(count, 1.0f);
  for (auto _ : state) {
    uq::parallel_for(
        0, static_cast<std::int64_t>(count), 1 << 20, [&](std::int64_t lo, std::int64_t hi) {
          __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                           _mm256_setzero_ps()};
          for (std::int64_t i = lo; i + 32 <= hi; i += 32) {
            for (int k = 0; k < 4; ++k) {
              acc[k] = _mm256_add_ps(acc[k], _mm256_loadu_ps(&buffer[i + 8 * k]));
            }
          }
          const __m256 sum =
              _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
          float lanes[8];
          _mm256_storeu_ps(lanes, sum);
          float total = 0.0f;
          for (float lane : lanes) total += lane;
          benchmark::DoNotOptimize(total);
        });
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * count * sizeof(float)));
}
BENCHMARK(BM_MemoryRead)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// OpenBLAS fp32 GEMV on a 4096x4096 matrix (64 MiB: already beyond the L3).
void BM_SgemvF32(benchmark::State& state) {
  use_threads(static_cast<int>(state.range(0)));
  const int n = 4096;
  const auto a = random_floats(static_cast<std::size_t>(n) * n, 3);
  const auto x = random_floats(n, 4);
  std::vector<float> y(n);
  for (auto _ : state) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, n, 1.0f, a.data(), n, x.data(), 1, 0.0f, y.data(),
                1);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * a.size() * sizeof(float)));
}
BENCHMARK(BM_SgemvF32)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// A straightforward AVX2 bf16 GEMV (4096x4096, 32 MiB, x4 rotation): the
// unquantized baseline a bf16 model would run.
void BM_Bf16Gemv(benchmark::State& state) {
  use_threads(static_cast<int>(state.range(0)));
  const int n = 4096;
  const int copies = 8;
  std::vector<std::uint16_t> a(static_cast<std::size_t>(n) * n * copies);
  const auto values = random_floats(static_cast<std::size_t>(n) * n, 5);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = uq::f32_to_bf16(values[i % values.size()]);
  const auto x = random_floats(n, 6);
  std::vector<float> y(n);
  int next = 0;
  for (auto _ : state) {
    const std::uint16_t* matrix = a.data() + static_cast<std::size_t>(next) * n * n;
    uq::parallel_for(0, n, 16, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t o = lo; o < hi; ++o) {
        const std::uint16_t* row = matrix + o * n;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        for (int i = 0; i < n; i += 16) {
          const __m256i w0 =
              _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + i)));
          const __m256i w1 =
              _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + i + 8)));
          acc0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(w0, 16)),
                                 _mm256_loadu_ps(&x[i]), acc0);
          acc1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(w1, 16)),
                                 _mm256_loadu_ps(&x[i + 8]), acc1);
        }
        float lanes[8];
        _mm256_storeu_ps(lanes, _mm256_add_ps(acc0, acc1));
        float total = 0.0f;
        for (float lane : lanes) total += lane;
        y[o] = total;
      }
    });
    next = (next + 1) % copies;
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * n * n * 2);
}
BENCHMARK(BM_Bf16Gemv)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

constexpr std::int64_t kGemmM = 512;
constexpr std::int64_t kGemmK = 4096;
constexpr std::int64_t kGemmN = 4096;

void report_flops(benchmark::State& state) {
  state.counters["GFLOP/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * 2.0 * kGemmM * kGemmN * kGemmK * 1e-9,
      benchmark::Counter::kIsRate);
}

// Args: bits, threads. M=512 rows of x times a 4096x4096 quantized weight.
void BM_AffineGemm(benchmark::State& state) {
  use_threads(static_cast<int>(state.range(1)));
  const auto weights = rotating_weights(kGemmN, kGemmK, static_cast<int>(state.range(0)), 64);
  const auto x = random_floats(static_cast<std::size_t>(kGemmM * kGemmK), 7);
  std::vector<float> y(static_cast<std::size_t>(kGemmM * kGemmN));
  for (auto _ : state) {
    weights[0]->matmul(x.data(), kGemmM, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  report_flops(state);
}
BENCHMARK(BM_AffineGemm)
    ->ArgNames({"bits", "threads"})
    ->ArgsProduct({{4, 8}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The same product with OpenBLAS sgemm on the float weight.
void BM_Sgemm(benchmark::State& state) {
  use_threads(static_cast<int>(state.range(0)));
  const auto w = random_floats(static_cast<std::size_t>(kGemmN * kGemmK), 8);
  const auto x = random_floats(static_cast<std::size_t>(kGemmM * kGemmK), 7);
  std::vector<float> y(static_cast<std::size_t>(kGemmM * kGemmN));
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, kGemmM, kGemmN, kGemmK, 1.0f, x.data(),
                kGemmK, w.data(), kGemmK, 0.0f, y.data(), kGemmN);
    benchmark::DoNotOptimize(y.data());
  }
  report_flops(state);
}
BENCHMARK(BM_Sgemm)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
