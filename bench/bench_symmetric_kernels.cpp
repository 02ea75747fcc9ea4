// Symmetric per-channel GEMV (int8 and packed int4: quanto qint8, custom) with
// the scalar reference and AVX2, and GEMM through OpenBLAS. GEMV weights
// rotate through copies totalling >= 256 MiB so each iteration reads DRAM.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <memory>
#include <random>
#include <vector>

#include "core/thread_pool.hpp"
#include "kernels/cpu/symmetric_kernels.hpp"
#include "quant/symmetric_weight.hpp"
#include "support/random_floats.hpp"

namespace {

constexpr std::size_t kRotationBytes = std::size_t{256} << 20;

using uq::bench::random_floats;

std::vector<std::unique_ptr<uq::SymmetricWeight>> rotating_weights(std::int64_t out,
                                                                   std::int64_t in, int bits) {
  std::mt19937 rng(1);
  const auto row_bytes = bits == 8 ? in : (in + 1) / 2;
  std::vector<std::byte> codes(static_cast<std::size_t>(out * row_bytes));
  for (auto& c : codes) c = static_cast<std::byte>(rng());
  const std::vector<float> scales(static_cast<std::size_t>(out), 0.01f);
  const auto scale_bytes = std::as_bytes(std::span(scales));
  std::vector<std::unique_ptr<uq::SymmetricWeight>> copies;
  for (std::size_t total = 0; total < kRotationBytes || copies.size() < 2; total += codes.size()) {
    copies.push_back(uq::SymmetricWeight::from_codes(out, in, bits, codes, uq::DType::F32,
                                                     scale_bytes, "bench"));
  }
  return copies;
}

// Args: out, in, bits, isa (0 scalar, 1 AVX2), threads.
void BM_SymmetricGemv(benchmark::State& state) {
  const auto out = state.range(0);
  const auto in = state.range(1);
  uq::set_num_threads(static_cast<int>(state.range(4)));
  const auto weights = rotating_weights(out, in, static_cast<int>(state.range(2)));
  const auto isa = state.range(3) == 0 ? uq::cpu::KernelIsa::Scalar : uq::cpu::KernelIsa::Avx2;
  const auto x = random_floats(static_cast<std::size_t>(in), 2);
  std::vector<float> y(static_cast<std::size_t>(out));
  std::size_t next = 0;
  for (auto _ : state) {
    uq::cpu::symmetric_gemv(weights[next]->matrix(), x.data(), 1, y.data(), isa);
    next = (next + 1) % weights.size();
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(
      static_cast<std::int64_t>(state.iterations() * weights[0]->storage_bytes()));
}
BENCHMARK(BM_SymmetricGemv)
    ->ArgNames({"out", "in", "bits", "avx2", "threads"})
    ->ArgsProduct({{4096}, {4096}, {8, 4}, {0, 1}, {1, 2}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// Args: rows, bits. 4096 x 4096 weight, 1 thread.
void BM_SymmetricGemm(benchmark::State& state) {
  uq::set_num_threads(1);
  openblas_set_num_threads(1);
  const auto rows = state.range(0);
  const auto weights = rotating_weights(4096, 4096, static_cast<int>(state.range(1)));
  const auto x = random_floats(static_cast<std::size_t>(rows * 4096), 3);
  std::vector<float> y(static_cast<std::size_t>(rows * 4096));
  for (auto _ : state) {
    weights[0]->matmul(x.data(), rows, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * rows * 4096 * 4096 * 2);  // flops
}
BENCHMARK(BM_SymmetricGemm)
    ->ArgNames({"rows", "bits"})
    ->ArgsProduct({{64}, {8, 4}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
BENCHMARK_MAIN();
