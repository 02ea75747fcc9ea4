// bnb weights on one thread: NF4 GEMV (1 row, scalar reference vs AVX2
// table lookup) and LLM.int8 GEMV on a 2048 x 2048 matrix; weights read per second.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "core/thread_pool.hpp"
#include "kernels/cpu/bnb4_kernels.hpp"
#include "quant/bnb4_weight.hpp"
#include "quant/int8_rowwise_weight.hpp"

namespace {

constexpr std::int64_t kOut = 2048, kIn = 2048;

std::vector<float> random_values(std::size_t n) {
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> values(n);
  for (auto& value : values) value = normal(rng);
  return values;
}

const uq::Bnb4Weight& nf4() {
  static const auto weight = [] {
    const auto w = random_values(static_cast<std::size_t>(kOut * kIn));
    return uq::Bnb4Weight::quantize(w.data(), uq::DType::F32, kOut, kIn, uq::bnb::FourBitType::NF4,
                                    64, true, "bench");
  }();
  return *weight;
}

void BM_Nf4Gemv(benchmark::State& state) {
  uq::set_num_threads(1);
  const auto isa = state.range(0) == 0 ? uq::cpu::KernelIsa::Scalar : uq::cpu::KernelIsa::Avx2;
  const auto x = random_values(static_cast<std::size_t>(kIn));
  std::vector<float> y(static_cast<std::size_t>(kOut));
  for (auto _ : state) {
    uq::cpu::bnb4_gemv(nf4().matrix(), x.data(), 1, y.data(), isa);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(state.range(0) == 0 ? "scalar" : "avx2");
  state.counters["weights_per_second"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * kOut * kIn, benchmark::Counter::kIsRate);
}

void BM_Int8Gemv(benchmark::State& state) {
  uq::set_num_threads(1);
  static const auto weight = [] {
    const auto w = random_values(static_cast<std::size_t>(kOut * kIn));
    return uq::Int8RowwiseWeight::quantize(w.data(), uq::DType::F32, kOut, kIn, 6.0f, "bench");
  }();
  const auto x = random_values(static_cast<std::size_t>(kIn));
  std::vector<float> y(static_cast<std::size_t>(kOut));
  for (auto _ : state) {
    if (state.range(0) == 0) {
      weight->matmul_reference(x.data(), 1, y.data());
    } else {
      weight->matmul(x.data(), 1, y.data());
    }
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(state.range(0) == 0 ? "scalar" : "avx2");
  state.counters["weights_per_second"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * kOut * kIn, benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_Nf4Gemv)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Int8Gemv)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
