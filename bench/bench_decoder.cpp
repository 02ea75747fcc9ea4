// Decoder speed on the bundled tiny-llama (float32 activations): prompt
// processing (one batched forward over 256 tokens) and token-by-token decoding
// through the KV cache, at 1 and 2 threads, for the bf16 weights as stored and
// for every layer (embedding and lm_head too) quantized by the mlx backend at
// 8 and 4 bits (group size 64). Arguments: {threads, bits (0 = bf16)}.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <numeric>

#include <map>

#include "api/quantize.hpp"
#include "core/thread_pool.hpp"
#include "model/decoder.hpp"

namespace {

// The source tree this was built from, else models/ under the working directory.
std::filesystem::path model_dir() {
  const auto built_from =
      std::filesystem::path(__FILE__).parent_path().parent_path() / "models" / "tiny-llama";
  return std::filesystem::exists(built_from) ? built_from : "models/tiny-llama";
}

const std::shared_ptr<uq::Model>& model(std::int64_t bits) {
  static std::map<std::int64_t, std::shared_ptr<uq::Model>> models;
  auto& entry = models[bits];
  if (!entry) {
    static const std::shared_ptr<uq::Model> original = uq::load_model(model_dir());
    entry = bits == 0
                ? original
                : uq::quantize_model(original, {.bits = static_cast<int>(bits), .backend = "mlx"})
                      .first;
  }
  return entry;
}

void label(benchmark::State& state) {
  state.SetLabel(state.range(1) == 0 ? "bf16" : "mlx b" + std::to_string(state.range(1)) + " g64");
}

std::vector<std::int32_t> prompt(std::int64_t length) {
  std::vector<std::int32_t> ids(static_cast<std::size_t>(length));
  for (std::size_t i = 0; i < ids.size(); ++i)
    ids[i] = static_cast<std::int32_t>(200 + 37 * i % 3000);
  return ids;
}

void BM_Prefill256(benchmark::State& state) {
  uq::set_num_threads(static_cast<int>(state.range(0)));
  label(state);
  const auto& weights = model(state.range(1));
  const auto ids = prompt(256);
  for (auto _ : state) {
    benchmark::DoNotOptimize(weights->forward(ids, uq::LogitsMode::Last));
  }
  state.counters["tokens_per_second"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * 256.0, benchmark::Counter::kIsRate);
}

// Decoding 64 tokens after a 16-token prompt; only the decode steps are timed.
void BM_Decode64(benchmark::State& state) {
  uq::set_num_threads(static_cast<int>(state.range(0)));
  label(state);
  const auto& weights = model(state.range(1));
  const auto ids = prompt(16);
  uq::GenerationOptions options;
  options.max_new_tokens = 64;
  options.stop_at_eos = false;
  double decoded = 0.0;
  for (auto _ : state) {
    const auto result = weights->generate(ids, options);
    state.SetIterationTime(result.decode_seconds);
    decoded += static_cast<double>(result.new_tokens - 1);  // the first comes from the prompt pass
  }
  state.counters["tokens_per_second"] = benchmark::Counter(decoded, benchmark::Counter::kIsRate);
}

BENCHMARK(BM_Prefill256)
    ->ArgsProduct({{1, 2}, {0, 8, 4}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Decode64)
    ->ArgsProduct({{1, 2}, {0, 8, 4}})
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();

}  // namespace

BENCHMARK_MAIN();
