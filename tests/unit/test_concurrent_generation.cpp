// One loaded model serving several threads at once: generation, forward and
// the memory report give what serial calls give (run under TSan too).
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "api/backend_manager.hpp"
#include "api/quantize.hpp"
#include "core/thread_pool.hpp"
#include "model/decoder.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

constexpr int kThreads = 3;

GenerationOptions options_for(int request) {
  GenerationOptions options;
  options.max_new_tokens = 6;
  options.stop_at_eos = false;
  // Request 0 greedy; the others sample with their own seed.
  options.sampling.temperature = request == 0 ? 0.0f : 0.8f;
  options.sampling.top_k = 40;
  options.sampling.seed = static_cast<std::uint64_t>(request);
  return options;
}

std::vector<std::int32_t> prompt_for(int request) {
  const auto& ids = test::bundled().val_ids;
  const auto first = static_cast<std::ptrdiff_t>(request * 16);
  return {ids.begin() + first, ids.begin() + first + 8};
}

void expect_concurrent_equals_serial(const Model& model) {
  std::vector<std::vector<std::int32_t>> serial(kThreads), concurrent(kThreads);
  for (int r = 0; r < kThreads; ++r) serial[r] = model.generate(prompt_for(r), options_for(r)).ids;
  std::vector<std::thread> threads;
  for (int r = 0; r < kThreads; ++r) {
    threads.emplace_back(
        [&, r] { concurrent[r] = model.generate(prompt_for(r), options_for(r)).ids; });
  }
  for (auto& thread : threads) thread.join();
  for (int r = 0; r < kThreads; ++r) EXPECT_EQ(concurrent[r], serial[r]) << "request " << r;
}

TEST(ConcurrentGeneration, FloatModelServesThreadsLikeSerialCalls) {
  set_num_threads(2);  // the threads also race for the pool
  expect_concurrent_equals_serial(*test::bundled().model);
}

TEST(ConcurrentGeneration, QuantizedModelServesThreadsLikeSerialCalls) {
  UnifiedQuantizationConfig config;
  config.backend = "mlx";
  config.bits = 4;
  const auto [quantized, quantizer] = quantize_model(test::bundled().model, config);
  expect_concurrent_equals_serial(*quantized);
}

TEST(ConcurrentGeneration, MemoryReportsFromManyThreads) {
  std::vector<MemoryInfo> reports(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < reports.size(); ++i) {
    threads.emplace_back(
        [&reports, i] { reports[i] = BackendManager::get_instance().get_memory_info(); });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& report : reports) {
    EXPECT_GT(report.total_gb, 0.0);
    EXPECT_GT(report.process_rss_gb, 0.0);
    EXPECT_NEAR(report.total_gb, reports.front().total_gb, 1e-9);
  }
}

}  // namespace
}  // namespace uq
