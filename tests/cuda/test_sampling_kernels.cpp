// Device sampling (kernels/cuda/sampling_kernels.hpp) against the CPU sampler
// (model/sampling.hpp): on fresh random logits and the same uniform draw, the device picks the
// token uq::sample picks, exactly, for many (temperature, top-k, top-p) settings; its token
// frequencies follow the CPU's probabilities (chi-square); a captured graph replays with new
// parameters; and sampled generation on the GPU (CudaModel, `uq generate --device cuda`)
// emits the ids the CPU emits for the same seed.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_graph.hpp"
#include "kernels/cuda/cuda_model.hpp"
#include "kernels/cuda/decoder_kernels.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/device_buffer.hpp"
#include "kernels/cuda/sampling_kernels.hpp"
#include "kernels/cuda/stream.hpp"
#include "model/generate.hpp"
#include "model/sampling.hpp"
#include "support/test_support.hpp"

namespace {

using uq::cuda::DeviceBuffer;
using uq::cuda::SamplingParameters;

// One vocabulary's device buffers; pick() uploads logits and parameters, runs sample_token
// with the result poisoned, and returns the id.
class DeviceSampler {
 public:
  explicit DeviceSampler(int vocab)
      : vocab_(vocab),
        logits_(static_cast<std::size_t>(vocab)),
        parameters_(1),
        result_(1),
        workspace_(uq::cuda::sampling_workspace_bytes(vocab)) {}
  void upload(const std::vector<float>& logits) { logits_.upload(logits); }
  std::int32_t pick(const SamplingParameters& parameters) {
    parameters_.upload(std::span<const SamplingParameters>(&parameters, 1));
    result_.fill_bytes(0xff);
    enqueue(nullptr);
    UQ_CUDA_CHECK(cudaDeviceSynchronize());
    return result();
  }
  void enqueue(cudaStream_t stream) {
    uq::cuda::sample_token(logits_.data(), vocab_, parameters_.data(), workspace_.data(),
                           workspace_.bytes(), result_.data(), stream);
  }
  void set(const SamplingParameters& parameters) {
    parameters_.upload(std::span<const SamplingParameters>(&parameters, 1));
  }
  std::int32_t result() const {
    std::int32_t id = -1;
    result_.download(std::span<std::int32_t>(&id, 1));
    return id;
  }

 private:
  int vocab_;
  DeviceBuffer<float> logits_;
  DeviceBuffer<SamplingParameters> parameters_;
  DeviceBuffer<std::int32_t> result_;
  DeviceBuffer<unsigned char> workspace_;
};

std::int32_t cpu_pick(const std::vector<float>& logits, const SamplingParameters& parameters) {
  if (parameters.temperature == 0.0f) return uq::argmax(logits);
  uq::SamplingOptions options;
  options.temperature = parameters.temperature;
  options.top_k = parameters.top_k;
  options.top_p = parameters.top_p;
  return uq::sample(logits, options, parameters.draw);
}

enum class Shape { Peaked, Flat, Ties, Equal };

// vocab logits drawn from N(0, spread).
std::vector<float> normal_logits(int vocab, float spread, std::mt19937& random) {
  std::vector<float> logits(static_cast<std::size_t>(vocab));
  std::normal_distribution<float> normal(0.0f, spread);
  for (auto& logit : logits) logit = normal(random);
  return logits;
}

std::vector<float> random_logits(int vocab, Shape shape, std::mt19937& random) {
  if (shape == Shape::Peaked || shape == Shape::Flat)
    return normal_logits(vocab, shape == Shape::Peaked ? 6.0f : 0.05f, random);
  std::vector<float> logits(static_cast<std::size_t>(vocab));
  std::uniform_int_distribution<int> level(-4, 0);  // a few values, each shared by many tokens
  for (auto& logit : logits)
    logit = shape == Shape::Ties ? 0.5f * static_cast<float>(level(random)) : 1.25f;
  return logits;
}

class CudaSampling : public ::testing::Test {
 protected:
  void SetUp() override {
    if (uq::cuda::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU";
  }
  std::mt19937 random_{std::random_device{}()};
};

TEST_F(CudaSampling, PicksTheCpuSamplersTokenForTheSameDraw) {
  // (temperature, top-k, top-p); temperature 0 is greedy.
  const std::vector<SamplingParameters> settings = {
      {0.0, 0.0f, 0, 1.0f},    {0.0, 1.0f, 0, 1.0f},     {0.0, 0.8f, 40, 0.95f},
      {0.0, 0.7f, 1, 1.0f},    {0.0, 1.0f, 0, 1e-6f},    {0.0, 1.3f, 0, 0.9f},
      {0.0, 0.5f, 50, 1.0f},   {0.0, 2.0f, 1000, 0.99f}, {0.0, 1.0f, 1 << 30, 0.5f},
      {0.0, 0.05f, 0, 0.999f}, {0.0, 3.0f, 7, 0.3f}};
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  int checked = 0;
  for (const int vocab : {1, 7, 1000, 4097, 50001, 128256}) {
    DeviceSampler device(vocab);
    for (const Shape shape : {Shape::Peaked, Shape::Flat, Shape::Ties, Shape::Equal}) {
      const auto logits = random_logits(vocab, shape, random_);
      device.upload(logits);
      for (SamplingParameters parameters : settings) {
        for (const double draw : {uniform(random_), uniform(random_), 0.0, 0.999999}) {
          parameters.draw = draw;
          const std::int32_t want = cpu_pick(logits, parameters);
          ASSERT_EQ(device.pick(parameters), want)
              << "vocab " << vocab << " shape " << static_cast<int>(shape) << " temperature "
              << parameters.temperature << " top-k " << parameters.top_k << " top-p "
              << parameters.top_p << " draw " << draw;
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 6 * 4 * 11 * 4);
}

// Frequencies of the device's tokens over many draws against the CPU's candidate
// probabilities: chi-square over the candidates expected >= 5 times (the rest pooled), bound
// at p = 1e-6 (Wilson-Hilferty), so a correct sampler fails one run in a million.
TEST_F(CudaSampling, FrequenciesFollowCpuProbabilities) {
  const int vocab = 3001;
  const std::vector<float> logits = normal_logits(vocab, 2.0f, random_);
  DeviceSampler device(vocab);
  device.upload(logits);
  const float temperature = 0.9f;
  const std::int32_t top_k = 60;
  const float top_p = 0.9f;
  const auto candidates = uq::sampling_candidates(logits, temperature, top_k, top_p);
  std::vector<int> bin(vocab, -1);
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    bin[candidates[c].token] = static_cast<int>(c);
  }
  const int draws = 20000;
  std::vector<int> counts(candidates.size(), 0);
  std::mt19937_64 stream(std::random_device{}());
  for (int i = 0; i < draws; ++i) {
    const double draw = static_cast<double>(stream() >> 11) * 0x1.0p-53;
    const std::int32_t token = device.pick({draw, temperature, top_k, top_p});
    ASSERT_GE(token, 0);
    ASSERT_LT(token, vocab);
    ASSERT_GE(bin[token], 0) << "token " << token << " outside the top-k/top-p candidates";
    ++counts[bin[token]];
  }
  double chi_square = 0.0;
  double pooled_expected = 0.0;
  double pooled_count = 0.0;
  int bins = 0;
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    const double expected = draws * static_cast<double>(candidates[c].probability);
    if (expected >= 5.0) {
      chi_square += (counts[c] - expected) * (counts[c] - expected) / expected;
      ++bins;
    } else {
      pooled_expected += expected;
      pooled_count += counts[c];
    }
  }
  if (pooled_expected > 0.0) {
    chi_square += (pooled_count - pooled_expected) * (pooled_count - pooled_expected) /
                  std::max(pooled_expected, 1e-9);
    ++bins;
  }
  ASSERT_GE(bins, 10);
  const double df = bins - 1;
  const double z = 4.753;  // one-sided normal quantile of 1e-6
  const double a = 2.0 / (9.0 * df);
  const double bound = df * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
  EXPECT_LT(chi_square, bound) << bins << " bins";
  std::printf("chi-square %.1f over %d bins (bound %.1f at p = 1e-6)\n", chi_square, bins, bound);
}

// In a captured graph the parameters and the draw come from device memory: each replay with
// new ones picks the CPU's token. Also times a replay of sampling against one of greedy argmax
// on the 128256 vocabulary (docs/PERFORMANCE.md).
TEST_F(CudaSampling, GraphReplaysWithNewParametersAndTiming) {
  const int vocab = 128256;
  const std::vector<float> logits = normal_logits(vocab, 3.0f, random_);
  DeviceSampler device(vocab);
  device.upload(logits);
  uq::cuda::Stream stream;
  uq::cuda::CapturedGraph graph;
  device.set({0.5, 1.0f, 0, 1.0f});
  graph.capture(stream.get(), [&] { device.enqueue(stream.get()); });
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  const std::vector<SamplingParameters> settings = {
      {0.0, 0.8f, 40, 0.95f}, {0.0, 1.0f, 0, 1.0f}, {0.0, 0.0f, 0, 1.0f}, {0.0, 1.2f, 0, 0.9f}};
  for (int i = 0; i < 40; ++i) {
    SamplingParameters parameters = settings[static_cast<std::size_t>(i) % settings.size()];
    parameters.draw = uniform(random_);
    device.set(parameters);
    graph.launch(stream.get());
    stream.synchronize();
    ASSERT_EQ(device.result(), cpu_pick(logits, parameters)) << "replay " << i;
  }

  // Timing: replays back to back, device time per replay from events.
  DeviceBuffer<float> argmax_workspace(uq::cuda::argmax_workspace_floats());
  DeviceBuffer<std::int32_t> argmax_result(1);
  uq::cuda::CapturedGraph greedy;
  DeviceBuffer<float> row(static_cast<std::size_t>(vocab));
  row.upload(logits);
  greedy.capture(stream.get(), [&] {
    uq::cuda::argmax(row.data(), vocab, argmax_workspace.data(), argmax_result.data(),
                     stream.get());
  });
  const auto time_us = [&](const uq::cuda::CapturedGraph& timed) {
    cudaEvent_t start = nullptr;
    cudaEvent_t stop = nullptr;
    UQ_CUDA_CHECK(cudaEventCreate(&start));
    UQ_CUDA_CHECK(cudaEventCreate(&stop));
    for (int i = 0; i < 20; ++i) timed.launch(stream.get());
    const int replays = 500;
    UQ_CUDA_CHECK(cudaEventRecord(start, stream.get()));
    for (int i = 0; i < replays; ++i) timed.launch(stream.get());
    UQ_CUDA_CHECK(cudaEventRecord(stop, stream.get()));
    UQ_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    UQ_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    return 1000.0 * ms / replays;
  };
  const double greedy_us = time_us(greedy);
  for (const SamplingParameters& parameters :
       {SamplingParameters{0.3, 0.8f, 40, 0.95f}, SamplingParameters{0.3, 1.0f, 0, 1.0f},
        SamplingParameters{0.3, 1.0f, 0, 0.9f}}) {
    device.set(parameters);
    const double sampled_us = time_us(graph);
    std::printf(
        "timing vocab %d: greedy argmax %.1f us, sampling (T %.2f, top-k %d, top-p %.2f, N(0,3) "
        "logits) %.1f us per token\n",
        vocab, greedy_us, parameters.temperature, parameters.top_k, parameters.top_p, sampled_us);
    EXPECT_EQ(device.result(), cpu_pick(logits, parameters));
  }
  // Worst case: a flat row, whose top-p cut and draw scan most of the sorted vocabulary.
  device.upload(random_logits(vocab, Shape::Flat, random_));
  device.set({0.97, 1.0f, 0, 0.95f});
  std::printf("timing vocab %d: sampling flat N(0,0.05) logits, top-p 0.95: %.1f us per token\n",
              vocab, time_us(graph));
}

uq::GenerationOptions sampled_options(std::uint64_t seed) {
  uq::GenerationOptions options;
  options.max_new_tokens = 24;
  options.stop_at_eos = false;
  options.sampling.temperature = 0.8f;
  options.sampling.top_k = 40;
  options.sampling.top_p = 0.95f;
  options.sampling.seed = seed;
  return options;
}

// Sampled decoding through CudaModel's captured decode graph (re-captured when the cache grows
// past 256 positions) emits the CPU's ids for the same seed; the logits differ by ~1e-6, far
// from moving a draw across a candidate boundary.
TEST_F(CudaSampling, SampledGenerationEqualsCpu) {
  const auto cpu = uq::test::bundled().model;
  const uq::cuda::CudaModel gpu(cpu);
  const auto& ids = uq::test::bundled().val_ids;
  const std::span<const std::int32_t> prompt(ids.data(), 240);
  for (const std::uint64_t seed : {7u, 11u}) {
    const auto options = sampled_options(seed);
    EXPECT_EQ(uq::generate(gpu, prompt, options).ids, uq::generate(*cpu, prompt, options).ids)
        << "seed " << seed;
  }
  EXPECT_NE(uq::generate(gpu, prompt, sampled_options(7)).ids,
            uq::generate(gpu, prompt, sampled_options(8)).ids);
}

TEST_F(CudaSampling, GenerateCommandSamplesOnDevice) {
  const auto run = [](const std::string& device) {
    const auto result =
        uq::test::run_uq({"generate", uq::test::bundled_model().string(), "-p", "Once upon a time",
                          "-n", "20", "--temperature", "0.8", "--top-k", "40", "--top-p", "0.95",
                          "--seed", "7", "--device", device, "--json", "--quiet"});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return nlohmann::json::parse(result.out);
  };
  const auto gpu = run("cuda");
  const auto cpu = run("cpu");
  EXPECT_GE(gpu["new_tokens"].get<int>(), 1);  // 20 unless an end-of-sequence id is drawn
  EXPECT_EQ(gpu["ids"], cpu["ids"]);
  EXPECT_EQ(gpu["text"], cpu["text"]);
}

}  // namespace
