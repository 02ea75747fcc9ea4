// GEMV (one token) and export-quantization throughput of the GGUF block
// formats (GgmlWeight). The GEMV runs the int8-activation path (exact = 0,
// what decode uses) or the exact float one (exact = 1, UQ_EXACT_GEMV); compare
// with ggml's own Q4_0 GEMV in bench/ggml_q4_0. Weights rotate through copies totalling >= 256 MiB
// so every iteration streams its weight from DRAM, as in bench_quant_kernels.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "core/thread_pool.hpp"
#include "kernels/cpu/affine_gemv_int8.hpp"
#include "kernels/cpu/ggml_gemv_int8.hpp"
#include "quant/ggml_blocks.hpp"
#include "quant/ggml_weight.hpp"
#include "support/random_floats.hpp"

namespace {

constexpr std::size_t kRotationBytes = std::size_t{256} << 20;

using uq::bench::random_floats;

void BM_GgmlGemv(benchmark::State& state) {
  const auto type = static_cast<uq::GgmlType>(state.range(0));
  const std::int64_t out = state.range(1), in = state.range(2);
  uq::set_num_threads(static_cast<int>(state.range(3)));
  uq::cpu::set_exact_gemv(state.range(4) != 0);
  const auto w = random_floats(static_cast<std::size_t>(out * in), 1);
  const uq::GgmlWeight first = uq::GgmlWeight::quantize(type, out, in, w.data());
  std::vector<uq::GgmlWeight> copies;
  for (std::size_t total = 0; total < kRotationBytes || copies.size() < 2;
       total += first.storage_bytes()) {
    copies.push_back(first);
  }
  const auto x = random_floats(static_cast<std::size_t>(in), 2);
  std::vector<float> y(static_cast<std::size_t>(out));
  std::size_t next = 0;
  for (auto _ : state) {
    copies[next].matmul(x.data(), 1, y.data());
    next = (next + 1) % copies.size();
    benchmark::DoNotOptimize(y.data());
  }
  uq::cpu::set_exact_gemv(false);
  state.SetLabel(std::string(uq::ggml_type_name(type)));
  state.counters["GB/s"] = benchmark::Counter(
      static_cast<double>(first.storage_bytes()) * static_cast<double>(state.iterations()) / 1e9,
      benchmark::Counter::kIsRate);
}

// The int8 GEMV with a chosen integer dot product (0: AVX2, 1: AVX-512 VNNI,
// where the CPU has it), 4096x4096, 1 thread, weights rotating as above.
void BM_GgmlInt8DotIsa(benchmark::State& state) {
  const auto type = static_cast<uq::GgmlType>(state.range(0));
  const auto isa = state.range(1) == 1 ? uq::cpu::DotIsa::Avx512Vnni : uq::cpu::DotIsa::Avx2;
  if (isa != uq::cpu::best_dot_isa() && isa == uq::cpu::DotIsa::Avx512Vnni) {
    state.SkipWithError("no AVX-512 VNNI");
    return;
  }
  const std::int64_t out = 4096, in = 4096;
  uq::set_num_threads(1);
  const auto w = random_floats(static_cast<std::size_t>(out * in), 1);
  const uq::GgmlWeight first = uq::GgmlWeight::quantize(type, out, in, w.data());
  std::vector<uq::GgmlWeight> copies;
  for (std::size_t total = 0; total < kRotationBytes || copies.size() < 2;
       total += first.storage_bytes()) {
    copies.push_back(first);
  }
  const auto x = random_floats(static_cast<std::size_t>(in), 2);
  std::vector<float> y(static_cast<std::size_t>(out));
  const auto dot = uq::cpu::ggml_int8_dot_simd(type, isa);
  const std::size_t row_bytes = uq::ggml_row_bytes(type, in);
  std::size_t next = 0;
  for (auto _ : state) {
    uq::cpu::ggml_gemv_int8(dot, copies[next].bytes().data(), row_bytes, out, in, x.data(), 1,
                            y.data());
    next = (next + 1) % copies.size();
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(std::string(uq::ggml_type_name(type)));
  state.counters["GB/s"] = benchmark::Counter(
      static_cast<double>(first.storage_bytes()) * static_cast<double>(state.iterations()) / 1e9,
      benchmark::Counter::kIsRate);
}

void BM_GgmlQuantize(benchmark::State& state) {
  const auto type = static_cast<uq::GgmlType>(state.range(0));
  const std::int64_t count = 4096 * 256;
  const auto x = random_floats(static_cast<std::size_t>(count), 3);
  std::vector<std::byte> out(uq::ggml_row_bytes(type, count));
  for (auto _ : state) {
    uq::ggml_quantize_row(type, x.data(), count, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(std::string(uq::ggml_type_name(type)));
  state.counters["Mweights/s"] =
      benchmark::Counter(static_cast<double>(count) * static_cast<double>(state.iterations()) / 1e6,
                         benchmark::Counter::kIsRate);
}

void gemv_arguments(benchmark::internal::Benchmark* bench) {
  bench->ArgNames({"type", "out", "in", "threads", "exact"});
  for (const auto type : {uq::GgmlType::Q4_0, uq::GgmlType::Q4_1, uq::GgmlType::Q5_0,
                          uq::GgmlType::Q8_0, uq::GgmlType::Q4_K, uq::GgmlType::Q6_K}) {
    for (const std::int64_t out : {4096, 14336}) {
      bench->Args({static_cast<std::int64_t>(type), out, 4096, 1, 0});
    }
    bench->Args({static_cast<std::int64_t>(type), 4096, 4096, 2, 0});
    bench->Args({static_cast<std::int64_t>(type), 4096, 4096, 1, 1});
  }
}

void quantize_arguments(benchmark::internal::Benchmark* bench) {
  for (const auto type :
       {uq::GgmlType::Q4_0, uq::GgmlType::Q8_0, uq::GgmlType::Q4_K, uq::GgmlType::Q6_K}) {
    bench->Arg(static_cast<std::int64_t>(type));
  }
}

BENCHMARK(BM_GgmlGemv)->Apply(gemv_arguments)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_GgmlInt8DotIsa)
    ->ArgNames({"type", "isa"})
    ->ArgsProduct({{2, 3, 6, 8, 12, 14}, {0, 1}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_GgmlQuantize)->Apply(quantize_arguments)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
