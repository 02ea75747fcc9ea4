// GPU QLoRA training speed: a synthetic model of a preset's shape (src/model/synthetic_model.hpp,
// MLX affine `bits` g64 built in memory), LoRA rank/alpha on all seven projections of every
// layer, windows of random ids; optimizer steps (forward + backward + clip + AdamW) timed
// after one warm-up step. Prints tokens/s, the matmul rate achieved against cuBLAS on the
// dominant GEMM shape, the copy bandwidth, and the device memory in use (every buffer of the
// trainer is allocated up front and kept, so the memory after the steps is its peak).
// Usage: bench_cuda_finetune [--preset llama3-8b] [--layers N] [--bits 4] [--rank 16]
//          [--ctx 512] [--batch 8] [--steps 3] [--tf32]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "kernels/cuda/copy_bandwidth.hpp"
#include "kernels/cuda/cublas_library.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_trainable_decoder.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/device_buffer.hpp"
#include "kernels/cuda/stream.hpp"
#include "model/decoder.hpp"
#include "model/synthetic_model.hpp"
#include "train/lora_attach.hpp"

namespace {

using namespace uq;

double used_gib() {
  std::size_t free_bytes = 0;
  std::size_t total = 0;
  UQ_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
  return static_cast<double>(total - free_bytes) / (1024.0 * 1024.0 * 1024.0);
}

// Median TFLOP/s of an fp32 (or TF32) cuBLAS GEMM C[m, n] = A[m, k]·B[n, k]ᵀ on random data.
double cublas_tflops(int m, int n, int k, bool tf32) {
  cuda::DeviceBuffer<float> a(static_cast<std::size_t>(m) * k);
  cuda::DeviceBuffer<float> b(static_cast<std::size_t>(n) * k);
  cuda::DeviceBuffer<float> c(static_cast<std::size_t>(m) * n);
  std::mt19937 random(1);
  std::uniform_real_distribution<float> draw(-1.0f, 1.0f);
  std::vector<float> host(std::max(a.size(), b.size()));
  for (float& value : host) value = draw(random);
  a.upload(std::span(host).first(a.size()));
  b.upload(std::span(host).first(b.size()));
  cuda::CublasHandle handle;
  cuda::Event start, stop;
  const float one = 1.0f;
  const float zero = 0.0f;
  std::vector<double> samples;
  for (int rep = 0; rep < 8; ++rep) {
    start.record(nullptr);
    UQ_CUDA_CHECK(uq::cuda::cublas_library().gemm_ex(
        handle.get(), CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, b.data(), CUDA_R_32F, k, a.data(),
        CUDA_R_32F, k, &zero, c.data(), CUDA_R_32F, n,
        tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    stop.record(nullptr);
    if (rep > 0) samples.push_back(stop.elapsed_ms_since(start));
  }
  std::nth_element(samples.begin(), samples.begin() + samples.size() / 2, samples.end());
  return 2.0 * m * n * k / (samples[samples.size() / 2] * 1e-3) / 1e12;
}

}  // namespace

int main(int argc, char** argv) try {
  SyntheticModelOptions synthetic;
  synthetic.preset = "llama3-8b";
  synthetic.bits = 4;
  LoraConfig lora;
  std::int64_t ctx = 512;
  std::int64_t batch = 8;
  int steps = 3;
  bool tf32 = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail("option ", arg, " needs a value");
      return argv[++i];
    };
    if (arg == "--preset") {
      synthetic.preset = value();
    } else if (arg == "--layers") {
      synthetic.layers = std::stoll(value());
    } else if (arg == "--bits") {
      synthetic.bits = std::stoi(value());
    } else if (arg == "--rank") {
      lora.rank = std::stoi(value());
      lora.alpha = 2.0 * lora.rank;
    } else if (arg == "--ctx") {
      ctx = std::stoll(value());
    } else if (arg == "--batch") {
      batch = std::stoll(value());
    } else if (arg == "--steps") {
      steps = std::stoi(value());
    } else if (arg == "--tf32") {
      tf32 = true;
    } else {
      fail("unknown option ", arg);
    }
  }
  if (cuda::cuda_device_count() == 0) {
    std::printf("no CUDA GPU: nothing to measure\n");
    return 0;
  }
  const cuda::DeviceProperties device = cuda::device_properties(0);
  const double copy_gbs = cuda::measure_copy_bandwidth(1024) / 1e9;
  const auto model = make_synthetic_model(synthetic);
  const ModelConfig& config = model->config();
  const std::vector<NamedLoraAdapter> attached = attach_lora(*model, lora, 0);
  std::vector<cuda::NamedDeviceAdapter> named;
  for (const NamedLoraAdapter& adapter : attached) {
    named.push_back({adapter.path, adapter.adapter.get()});
  }
  const double before_gib = used_gib();
  cuda::CudaTrainableDecoder decoder(*model, named, {0.0, tf32});
  const double weights_gib = used_gib() - before_gib;

  std::mt19937 random(3);
  std::uniform_int_distribution<std::int32_t> token(
      0, static_cast<std::int32_t>(config.vocab_size - 1));
  const double weight = 1.0 / static_cast<double>(batch * (ctx - 1));
  const auto run_step = [&] {
    std::vector<std::int32_t> ids(static_cast<std::size_t>(batch * ctx));
    for (auto& id : ids) id = token(random);
    decoder.zero_gradients();
    const double nll = decoder.accumulate(ids, batch, weight);
    decoder.clip_and_step(1.0, 1e-4, {});
    return nll * weight;
  };
  run_step();  // warm-up: allocations, cuBLAS heuristics
  const auto start = std::chrono::steady_clock::now();
  double loss = 0.0;
  for (int s = 0; s < steps; ++s) loss = run_step();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / steps;
  const double tokens_per_second = static_cast<double>(batch * ctx) / seconds;

  // Matrix work per step: each frozen linear forward and transposed (2·2·rows·out·in), the
  // lm_head likewise, attention 6 products of 2·T·T·head_dim per head and window.
  const double rows = static_cast<double>(batch * ctx);
  const double hidden = static_cast<double>(config.hidden_size);
  const double q_width = static_cast<double>(config.num_attention_heads * config.head_dim);
  const double kv_width = static_cast<double>(config.num_key_value_heads * config.head_dim);
  const double inner = static_cast<double>(config.intermediate_size);
  const auto layers = static_cast<double>(config.num_hidden_layers);
  const auto heads = static_cast<double>(config.num_attention_heads);
  const double layer_weights =
      hidden * (q_width + 2 * kv_width) + q_width * hidden + 3 * hidden * inner;
  const double linear_flops =
      4.0 * rows * (layer_weights * layers + hidden * static_cast<double>(config.vocab_size));
  const double attention_flops = 12.0 * static_cast<double>(batch) * heads *
                                 static_cast<double>(ctx * ctx) *
                                 static_cast<double>(config.head_dim) * layers;
  const double achieved = (linear_flops + attention_flops) / seconds / 1e12;
  const double baseline = cublas_tflops(static_cast<int>(rows), static_cast<int>(inner),
                                        static_cast<int>(hidden), tf32);
  std::printf(
      "%s | %s %d-bit g64, %lld layers | rank %d | batch %lld x ctx %lld | %s products\n"
      "step %.1f ms | %.0f tokens/s | loss %.3f\n"
      "matmul %.1f TFLOP/s vs cuBLAS %s %dx%dx%d: %.1f TFLOP/s | copy %.0f GB/s\n"
      "device memory: %.2f GiB in use after the steps (frozen weights + adapters %.2f GiB at "
      "start), of %.1f GiB\n",
      device.name.c_str(), synthetic.preset.c_str(), synthetic.bits,
      static_cast<long long>(config.num_hidden_layers), lora.rank, static_cast<long long>(batch),
      static_cast<long long>(ctx), tf32 ? "TF32" : "FP32", seconds * 1e3, tokens_per_second, loss,
      achieved, tf32 ? "TF32" : "FP32", static_cast<int>(rows), static_cast<int>(inner),
      static_cast<int>(hidden), baseline, copy_gbs, used_gib(), weights_gib,
      static_cast<double>(device.global_memory_bytes) / (1024.0 * 1024.0 * 1024.0));
  return 0;
} catch (const uq::Error& error) {
  std::fprintf(stderr, "error: %s\n", error.what());
  return 1;
}
