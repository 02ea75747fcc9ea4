// GPU benchmark of GPTQ over the decoder blocks (kernels/cuda/gptq_blocks_cuda.hpp) on a
// synthetic model (model/synthetic_model.hpp, random bf16 weights): wall time of the whole
// calibration and of each block, peak device memory, with the device's copy bandwidth and
// cuBLAS fp32 sgemm rate measured in the same run for context.
// Usage: bench_gptq_cuda [--preset llama3-8b] [--layers N] [--windows 128] [--ctx 2048]
//                        [--bits 4] [--group-size 64]
// Calibration tokens are random ids (a synthetic model has no tokenizer); each block does the
// same work whatever its inputs, so --layers N < 32 times N blocks of the full shape.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "calibration/block_linears.hpp"
#include "core/error.hpp"
#include "kernels/cuda/copy_bandwidth.hpp"
#include "kernels/cuda/cublas_library.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/device_buffer.hpp"
#include "kernels/cuda/gptq_blocks_cuda.hpp"
#include "kernels/cuda/stream.hpp"
#include "model/decoder.hpp"
#include "model/float_weight.hpp"
#include "model/synthetic_model.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// TFLOP/s of a 8192³ fp32 cuBLAS sgemm (median-free: mean of 5 after 2 warm-ups).
double sgemm_tflops() {
  const int n = 8192;
  uq::cuda::Stream stream;
  uq::cuda::CublasHandle cublas;
  UQ_CUDA_CHECK(uq::cuda::cublas_library().set_stream(cublas.get(), stream.get()));
  std::vector<float> host(static_cast<std::size_t>(n) * n);
  std::uint64_t state = 12345;
  for (float& value : host) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    value = static_cast<float>(state >> 40) / static_cast<float>(1 << 24) - 0.5f;
  }
  uq::cuda::DeviceBuffer<float> a(host.size()), b(host.size()), c(host.size());
  a.upload(host);
  b.upload(host);
  const float one = 1.0f, zero = 0.0f;
  const auto product = [&] {
    UQ_CUDA_CHECK(uq::cuda::cublas_library().sgemm(cublas.get(), CUBLAS_OP_N, CUBLAS_OP_N, n, n, n,
                                                   &one, a.data(), n, b.data(), n, &zero, c.data(),
                                                   n));
  };
  product();
  product();
  uq::cuda::Event start, stop;
  start.record(stream.get());
  for (int i = 0; i < 5; ++i) product();
  stop.record(stream.get());
  const double ms = stop.elapsed_ms_since(start) / 5.0;
  return 2.0 * n * static_cast<double>(n) * n / (ms * 1e-3) / 1e12;
}

}  // namespace

int main(int argc, char** argv) try {
  uq::SyntheticModelOptions synthetic;
  synthetic.preset = "llama3-8b";
  int windows = 128, bits = 4, group = 64;
  std::int64_t ctx = 2048;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--preset")
      synthetic.preset = value;
    else if (flag == "--layers")
      synthetic.layers = std::stoll(value);
    else if (flag == "--windows")
      windows = std::stoi(value);
    else if (flag == "--ctx")
      ctx = std::stoll(value);
    else if (flag == "--bits")
      bits = std::stoi(value);
    else if (flag == "--group-size")
      group = std::stoi(value);
    else
      uq::fail("bench_gptq_cuda: unknown option ", flag);
  }
  if (uq::cuda::cuda_device_count() == 0) uq::fail("bench_gptq_cuda: no CUDA GPU");
  const auto properties = uq::cuda::device_properties(0);
  std::printf("device: %s, %d SMs, %.1f GiB\n", properties.name.c_str(), properties.multiprocessors,
              static_cast<double>(properties.global_memory_bytes) / (1 << 30));
  std::printf("copy bandwidth: %.0f GB/s; cuBLAS sgemm fp32 8192^3: %.1f TFLOP/s\n",
              uq::cuda::measure_copy_bandwidth() / 1e9, sgemm_tflops());

  auto start = Clock::now();
  auto model = uq::make_synthetic_model(synthetic);
  const auto& config = model->config();
  std::printf("synthetic %s: %lld layers, hidden %lld, intermediate %lld, made in %.1f s\n",
              synthetic.preset.c_str(), static_cast<long long>(config.num_hidden_layers),
              static_cast<long long>(config.hidden_size),
              static_cast<long long>(config.intermediate_size), seconds_since(start));
  std::vector<std::vector<std::int32_t>> ids(static_cast<std::size_t>(windows));
  std::uint64_t state = 7;
  for (auto& window : ids) {
    for (std::int64_t t = 0; t < ctx; ++t) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      window.push_back(
          static_cast<std::int32_t>((state >> 33) % static_cast<std::uint64_t>(config.vocab_size)));
    }
  }
  const uq::GridFor grids = [&](const std::string&, const uq::Weight& weight, std::string& note) {
    const auto& dense = dynamic_cast<const uq::FloatWeight&>(weight);
    return uq::make_grid("mlx", bits, group, weight.in_features(), dense.dtype(), note);
  };
  double worst_error = 0.0;
  start = Clock::now();
  const auto run = uq::cuda::gptq_calibrate_blocks(
      *model, ids, grids, uq::GptqOptions{},
      [&](std::int64_t, std::vector<uq::CalibratedLayer> layers) {
        for (const auto& layer : layers)
          worst_error = std::max(worst_error, layer.reconstruction_error);
      });
  const double total = seconds_since(start);
  double blocks = 0.0;
  for (std::size_t b = 0; b < run.block_seconds.size(); ++b) {
    std::printf("block %zu: %.2f s\n", b, run.block_seconds[b]);
    blocks += run.block_seconds[b];
  }
  const double per_block = blocks / static_cast<double>(run.block_seconds.size());
  std::printf(
      "GPTQ mlx b%d g%d, %d windows x %lld tokens: total %.1f s (embedding + upload %.1f s, "
      "blocks %.1f s, %.2f s per block); peak device memory %.1f GiB; worst layer error %.4f\n",
      bits, group, windows, static_cast<long long>(ctx), total, total - blocks, blocks, per_block,
      static_cast<double>(run.peak_device_bytes) / (1 << 30), worst_error);
  const double forward =
      blocks - run.upload_seconds - run.hessian_seconds - run.gptq_seconds - run.build_seconds;
  const auto count = static_cast<double>(run.block_seconds.size());
  std::printf(
      "per block: weights to f32 + upload %.2f s, Hessians %.2f s, GPTQ %.2f s, building the "
      "MLX weights (host) %.2f s, forward %.2f s\n",
      run.upload_seconds / count, run.hessian_seconds / count, run.gptq_seconds / count,
      run.build_seconds / count, forward / count);
  if (config.num_hidden_layers < 32) {
    std::printf("extrapolated to 32 blocks: %.1f s\n", total - blocks + 32.0 * per_block);
  }
  return 0;
} catch (const std::exception& error) {
  std::fprintf(stderr, "error: %s\n", error.what());
  return 1;
}
