// QLoRA training speed on the bundled tiny-llama: one window of 256 tokens
// through the training forward and backward (LoRA rank 16 on all seven
// projections), for the bf16 weights as stored and for every layer quantized
// by the mlx backend at 4 bits (group size 64); also the transposed product
// grad_x = grad_y·W of the largest projection alone. Arguments: {threads, bits (0 = bf16)}.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <map>

#include "api/quantize.hpp"
#include "core/thread_pool.hpp"
#include "model/decoder.hpp"
#include "train/lora_attach.hpp"
#include "train/trainable_decoder.hpp"

namespace {

std::filesystem::path model_dir() {
  const auto built_from =
      std::filesystem::path(__FILE__).parent_path().parent_path() / "models" / "tiny-llama";
  return std::filesystem::exists(built_from) ? built_from : "models/tiny-llama";
}

// A model of the given bits with fresh rank-16 adapters, and its trainer.
struct Adapted {
  std::shared_ptr<uq::Model> model;
  std::unique_ptr<uq::TrainableDecoder<float>> decoder;
};

Adapted& adapted(std::int64_t bits) {
  static std::map<std::int64_t, Adapted> cache;
  Adapted& entry = cache[bits];
  if (!entry.model) {
    const std::shared_ptr<uq::Model> original = uq::load_model(model_dir());
    entry.model =
        bits == 0 ? original
                  : uq::quantize_model(original, {.bits = static_cast<int>(bits), .backend = "mlx"})
                        .first;
    std::map<std::string, std::shared_ptr<uq::LoraAdapter>> trained;
    for (const auto& named : uq::attach_lora(*entry.model, uq::LoraConfig{})) {
      trained[named.path] = named.adapter;
    }
    entry.decoder = std::make_unique<uq::TrainableDecoder<float>>(*entry.model, trained);
  }
  return entry;
}

void label(benchmark::State& state) {
  state.SetLabel(state.range(1) == 0 ? "bf16" : "mlx b" + std::to_string(state.range(1)) + " g64");
}

void BM_TrainWindow256(benchmark::State& state) {
  uq::set_num_threads(static_cast<int>(state.range(0)));
  label(state);
  Adapted& entry = adapted(state.range(1));
  std::vector<std::int32_t> ids(256);
  for (std::size_t i = 0; i < ids.size(); ++i)
    ids[i] = static_cast<std::int32_t>(200 + 37 * i % 3000);
  for (auto _ : state) {
    entry.decoder->zero_gradients();
    benchmark::DoNotOptimize(entry.decoder->accumulate(ids, 1.0 / 255));
  }
  state.counters["tokens_per_second"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * 256.0, benchmark::Counter::kIsRate);
}

void BM_MatmulTransposed(benchmark::State& state) {
  uq::set_num_threads(static_cast<int>(state.range(0)));
  label(state);
  const auto& layer = adapted(state.range(1)).model->layers()[0];
  const uq::Weight& weight = *layer.gate_proj;  // [768, 256] (+ its LoRA)
  std::vector<float> grad_y(static_cast<std::size_t>(256 * weight.out_features()), 0.01f);
  std::vector<float> grad_x(static_cast<std::size_t>(256 * weight.in_features()));
  for (auto _ : state) {
    weight.matmul_transposed(grad_y.data(), 256, grad_x.data());
    benchmark::DoNotOptimize(grad_x.data());
  }
  state.counters["rows_per_second"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * 256.0, benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_TrainWindow256)
    ->Args({1, 0})
    ->Args({1, 4})
    ->Args({2, 0})
    ->Args({2, 4})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MatmulTransposed)->Args({1, 0})->Args({1, 4})->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
