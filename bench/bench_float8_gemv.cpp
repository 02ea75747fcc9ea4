// quanto qfloat8 weights (Float8Weight: decode-table GEMV, tiled sgemm for
// prompts) against quanto qint8 (SymmetricWeight, AVX2 int8 GEMV) on a
// 4096 x 4096 matrix, 1 thread. GEMV weights rotate through copies totalling
// >= 128 MiB so each iteration reads DRAM.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <memory>
#include <random>
#include <vector>

#include "core/thread_pool.hpp"
#include "quant/float8_weight.hpp"
#include "quant/symmetric_weight.hpp"
#include "support/random_floats.hpp"

namespace {

constexpr std::int64_t kSize = 4096;
constexpr int kCopies = 8;  // 16 MiB of codes each

using uq::bench::random_floats;

// Arg 0: format (0 qint8, 1 qfloat8 e4m3fn, 2 qfloat8 e5m2).
std::vector<std::unique_ptr<uq::Weight>> rotating_weights(std::int64_t format) {
  const auto w = random_floats(static_cast<std::size_t>(kSize * kSize), 1);
  std::vector<std::unique_ptr<uq::Weight>> copies;
  for (int i = 0; i < kCopies; ++i) {
    if (format == 0) {
      copies.push_back(uq::SymmetricWeight::quantize(w.data(), uq::DType::F32, kSize, kSize, 8,
                                                     uq::DType::BF16, "bench"));
    } else {
      copies.push_back(uq::Float8Weight::quantize(
          w.data(), uq::DType::F32, kSize, kSize,
          format == 1 ? uq::DType::F8_E4M3 : uq::DType::F8_E5M2, uq::DType::BF16, "bench"));
    }
  }
  return copies;
}

void BM_QuantoGemv(benchmark::State& state) {
  uq::set_num_threads(1);
  const auto weights = rotating_weights(state.range(0));
  const auto x = random_floats(kSize, 2);
  std::vector<float> y(kSize);
  std::size_t next = 0;
  for (auto _ : state) {
    weights[next]->matmul(x.data(), 1, y.data());
    next = (next + 1) % weights.size();
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(
      static_cast<std::int64_t>(state.iterations() * weights[0]->storage_bytes()));
}
BENCHMARK(BM_QuantoGemv)
    ->ArgNames({"format"})
    ->DenseRange(0, 2)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

void BM_QuantoGemm(benchmark::State& state) {
  uq::set_num_threads(1);
  openblas_set_num_threads(1);
  const auto weights = rotating_weights(state.range(0));
  const std::int64_t rows = 64;
  const auto x = random_floats(static_cast<std::size_t>(rows * kSize), 3);
  std::vector<float> y(static_cast<std::size_t>(rows * kSize));
  for (auto _ : state) {
    weights[0]->matmul(x.data(), rows, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * rows * kSize * kSize * 2);  // flops
}
BENCHMARK(BM_QuantoGemm)
    ->ArgNames({"format"})
    ->DenseRange(0, 1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
BENCHMARK_MAIN();
