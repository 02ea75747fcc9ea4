// The two sgemm-shaped steps of GPTQ on Llama-3-8B shapes, on the CPU threads
// given by UQ_NUM_THREADS: Hessian accumulation (2048 tokens of a 4096-wide
// input) and the GPTQ update of one [4096, 4096] layer at 4 bits g64
// (Cholesky of H⁻¹ included). An 8B model has 32 blocks of 7 linears (inputs
// 4096 x 6 and 14336 x 1), which bounds a full run by scaling these.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "calibration/gptq.hpp"
#include "calibration/hessian.hpp"
#include "calibration/quant_grid.hpp"

namespace {

constexpr std::int64_t kWidth = 4096, kTokens = 2048;

std::vector<float> random_values(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(n);
  for (auto& value : values) value = normal(rng);
  return values;
}

void BM_HessianAccumulation(benchmark::State& state) {
  const auto x = random_values(static_cast<std::size_t>(kTokens * kWidth), 1);
  for (auto _ : state) {
    uq::HessianAccumulator accumulator(kWidth);
    accumulator.add(x.data(), kTokens);
    benchmark::DoNotOptimize(accumulator.rows());
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(kTokens),
                                                  benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_HessianAccumulation)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_GptqLayer(benchmark::State& state) {
  const auto x = random_values(static_cast<std::size_t>(kTokens * kWidth), 2);
  uq::HessianAccumulator accumulator(kWidth);
  accumulator.add(x.data(), kTokens);
  const auto hessian = accumulator.hessian();
  auto weights = random_values(static_cast<std::size_t>(kWidth * kWidth), 3);
  for (auto& w : weights) w *= 0.02f;
  std::string note;
  const auto grid = uq::make_grid("mlx", 4, 64, kWidth, uq::DType::BF16, note);
  for (auto _ : state) {
    benchmark::DoNotOptimize(uq::gptq_quantize(weights.data(), kWidth, kWidth, hessian, *grid));
  }
}
BENCHMARK(BM_GptqLayer)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

}  // namespace
BENCHMARK_MAIN();
