// GPU benchmark of every weight format's CUDA product (DeviceMatrix, as the model runs it) at
// 14336x4096 for 1, 8 and 16 input rows, against cuBLAS bf16 (GemmEx, f32 output) and the device
// copy bandwidth, measured in the same run.
// Usage: bench_cuda_formats [--json FILE]
// Weights: random normal values quantized by each format's own CPU quantizer; each matrix is
// uploaded kCopies times and successive launches rotate over the copies, so the 50 MB L2 cannot
// hold the weights. Inputs random normal. Timing: kBatch launches between CUDA events after a
// warm-up, kReps times; the median per launch. "GB/s" = the format's storage bytes / time.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "core/error.hpp"
#include "kernels/cuda/copy_bandwidth.hpp"
#include "kernels/cuda/cublas_library.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/device_linear.hpp"
#include "kernels/cuda/stream.hpp"
#include "quant/affine_weight.hpp"
#include "quant/bnb4_weight.hpp"
#include "quant/float8_weight.hpp"
#include "quant/ggml_weight.hpp"
#include "quant/int8_rowwise_weight.hpp"
#include "quant/symmetric_weight.hpp"

namespace {

using namespace uq;
using namespace uq::cuda;

constexpr int kOut = 14336;
constexpr int kIn = 4096;
constexpr int kCopies = 3;
constexpr int kBatch = 20;
constexpr int kReps = 15;

double median_us(cudaStream_t stream, const std::function<void(int)>& launch) {
  for (int i = 0; i < kBatch; ++i) launch(i);  // warm-up (and scratch allocation)
  UQ_CUDA_CHECK(cudaStreamSynchronize(stream));
  Event start, stop;
  std::vector<double> samples;
  for (int r = 0; r < kReps; ++r) {
    start.record(stream);
    for (int i = 0; i < kBatch; ++i) launch(i);
    stop.record(stream);
    samples.push_back(1000.0 * stop.elapsed_ms_since(start) / kBatch);
  }
  std::nth_element(samples.begin(), samples.begin() + kReps / 2, samples.end());
  return samples[kReps / 2];
}

struct Format {
  std::string name;
  std::function<std::shared_ptr<const Weight>(const std::vector<float>&)> make;
};

std::vector<Format> formats() {
  const auto affine = [](int bits, int group, DType params) {
    return [=](const std::vector<float>& w) -> std::shared_ptr<const Weight> {
      std::vector<std::uint16_t> half(w.size());
      for (std::size_t i = 0; i < w.size(); ++i)
        half[i] = params == DType::F16 ? f32_to_f16(w[i]) : f32_to_bf16(w[i]);
      return AffineWeight::quantize(half.data(), params, kOut, kIn, bits, group, "w");
    };
  };
  const auto ggml = [](GgmlType type) {
    return [=](const std::vector<float>& w) -> std::shared_ptr<const Weight> {
      return std::make_shared<GgmlWeight>(GgmlWeight::quantize(type, kOut, kIn, w.data()));
    };
  };
  return {
      {"mlx affine b4 g64 bf16 (tuned)", affine(4, 64, DType::BF16)},
      {"affine b4 g64 f16", affine(4, 64, DType::F16)},
      {"affine b4 g128 f16 (quanto int4)", affine(4, 128, DType::F16)},
      {"affine b2 g128 f16 (quanto int2)", affine(2, 128, DType::F16)},
      {"symmetric int8 (quanto/custom)",
       [](const std::vector<float>& w) -> std::shared_ptr<const Weight> {
         return SymmetricWeight::quantize(w.data(), DType::F32, kOut, kIn, 8, DType::BF16, "w");
       }},
      {"symmetric int4 (custom)",
       [](const std::vector<float>& w) -> std::shared_ptr<const Weight> {
         return SymmetricWeight::quantize(w.data(), DType::F32, kOut, kIn, 4, DType::BF16, "w");
       }},
      {"float8 e4m3fn",
       [](const std::vector<float>& w) -> std::shared_ptr<const Weight> {
         return Float8Weight::quantize(w.data(), DType::F32, kOut, kIn, DType::F8_E4M3, DType::BF16,
                                       "w");
       }},
      {"bnb nf4 block64 double-quant",
       [](const std::vector<float>& w) -> std::shared_ptr<const Weight> {
         return Bnb4Weight::quantize(w.data(), DType::F32, kOut, kIn, bnb::FourBitType::NF4, 64,
                                     true, "w");
       }},
      {"bnb int8 rowwise (LLM.int8)",
       [](const std::vector<float>& w) -> std::shared_ptr<const Weight> {
         return Int8RowwiseWeight::quantize(w.data(), DType::F32, kOut, kIn,
                                            Int8RowwiseWeight::kDefaultThreshold, "w");
       }},
      {"ggml Q8_0", ggml(GgmlType::Q8_0)},
      {"ggml Q4_0", ggml(GgmlType::Q4_0)},
      {"ggml Q4_1", ggml(GgmlType::Q4_1)},
      {"ggml Q5_0", ggml(GgmlType::Q5_0)},
      {"ggml Q4_K", ggml(GgmlType::Q4_K)},
      {"ggml Q6_K", ggml(GgmlType::Q6_K)},
      {"ggml F16", ggml(GgmlType::F16)},
  };
}

struct Result {
  std::string name;
  double bytes;
  double us[3];  // rows kRows[i]
};

constexpr int kRows[3] = {1, 8, 16};

}  // namespace

int main(int argc, char** argv) try {
  std::string json_path;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--json") json_path = argv[i + 1];
  if (cuda_device_count() == 0) fail("no CUDA GPU");
  const DeviceProperties props = device_properties(0);
  std::printf("device: %s, %d SMs\n", props.name.c_str(), props.multiprocessors);
  const double copy_gbs = measure_copy_bandwidth() / 1e9;
  std::printf("device copy (D2D 1 GiB, read+write): %.0f GB/s\n", copy_gbs);

  std::mt19937_64 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> w(static_cast<std::size_t>(kOut) * kIn);
  for (auto& v : w) v = normal(rng);
  std::normal_distribution<float> unit(0.0f, 1.0f);
  std::vector<float> x(16 * static_cast<std::size_t>(kIn));
  for (auto& v : x) v = unit(rng);

  Stream stream;
  CublasHandle cublas;
  LinearScratch scratch;
  const LinearContext context{stream.get(), cublas.get(), &scratch};
  DeviceBuffer<float> device_x(x.size());
  device_x.upload(x);
  DeviceBuffer<float> y(16 * static_cast<std::size_t>(kOut));

  // cuBLAS bf16 baseline: bf16 W and x, f32 output.
  double cublas_us[3] = {};
  {
    std::vector<std::uint16_t> w16(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) w16[i] = f32_to_bf16(w[i]);
    std::vector<std::uint16_t> x16(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) x16[i] = f32_to_bf16(x[i]);
    std::vector<DeviceBuffer<std::uint16_t>> copies;
    for (int c = 0; c < kCopies; ++c) {
      copies.emplace_back(w16.size());
      copies.back().upload(w16);
    }
    DeviceBuffer<std::uint16_t> device_x16(x16.size());
    device_x16.upload(x16);
    UQ_CUDA_CHECK(uq::cuda::cublas_library().set_stream(cublas.get(), stream.get()));
    for (int k = 0; k < 3; ++k) {
      const int rows = kRows[k];
      cublas_us[k] = median_us(stream.get(), [&](int i) {
        const float one = 1.0f, zero = 0.0f;
        UQ_CUDA_CHECK(uq::cuda::cublas_library().gemm_ex(
            cublas.get(), CUBLAS_OP_T, CUBLAS_OP_N, kOut, rows, kIn, &one,
            copies[static_cast<std::size_t>(i % kCopies)].data(), CUDA_R_16BF, kIn,
            device_x16.data(), CUDA_R_16BF, kIn, &zero, y.data(), CUDA_R_32F, kOut,
            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      });
    }
  }
  std::printf("cuBLAS bf16 %dx%d: rows 1 %.2f us, rows 8 %.2f us, rows 16 %.2f us\n", kOut, kIn,
              cublas_us[0], cublas_us[1], cublas_us[2]);

  // Quantize every format on all CPU cores at once, then time each.
  const auto list = formats();
  std::vector<std::future<std::shared_ptr<const Weight>>> pending;
  for (const auto& format : list)
    pending.push_back(std::async(std::launch::async, [&format, &w] { return format.make(w); }));
  std::vector<Result> results;
  for (std::size_t f = 0; f < list.size(); ++f) {
    const auto weight = pending[f].get();
    std::vector<std::unique_ptr<DeviceMatrix>> copies;
    for (int c = 0; c < kCopies; ++c)
      copies.push_back(
          std::make_unique<DeviceMatrix>(std::vector<NamedWeight>{{"w", weight.get()}}));
    Result result{list[f].name, static_cast<double>(weight->storage_bytes()), {}};
    for (int k = 0; k < 3; ++k) {
      result.us[k] = median_us(stream.get(), [&](int i) {
        copies[static_cast<std::size_t>(i % kCopies)]->multiply(device_x.data(), kRows[k], context,
                                                                y.data());
      });
    }
    results.push_back(result);
    std::printf("  %-34s done\n", result.name.c_str());
    std::fflush(stdout);
  }

  std::printf("\n%dx%d, copy %.0f GB/s, cuBLAS bf16 %.2f / %.2f / %.2f us (1 / 8 / 16 rows)\n",
              kOut, kIn, copy_gbs, cublas_us[0], cublas_us[1], cublas_us[2]);
  std::printf("%-34s %7s %7s %5s %6s %7s %6s %7s %6s %6s\n", "format", "MB", "floor", "rows", "us",
              "GB/s", "%copy", "x floor", "xcuBL", "");
  for (const auto& r : results) {
    const double floor_us = r.bytes / copy_gbs / 1e3;
    for (int k = 0; k < 3; ++k) {
      std::printf("%-34s %7.1f %7.2f %5d %6.2f %7.0f %5.1f%% %7.2f %5.2fx\n",
                  k == 0 ? r.name.c_str() : "", r.bytes / 1e6, floor_us, kRows[k], r.us[k],
                  r.bytes / r.us[k] / 1e3, 100.0 * r.bytes / r.us[k] / 1e3 / copy_gbs,
                  r.us[k] / floor_us, cublas_us[k] / r.us[k]);
    }
  }
  if (!json_path.empty()) {
    std::ofstream json(json_path);
    json << "{\"device\": \"" << props.name << "\", \"copy_gbs\": " << copy_gbs
         << ", \"cublas_bf16_us\": {\"1\": " << cublas_us[0] << ", \"8\": " << cublas_us[1]
         << ", \"16\": " << cublas_us[2] << "}, \"formats\": [";
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      json << (i ? ", " : "") << "{\"name\": \"" << r.name << "\", \"bytes\": " << r.bytes
           << ", \"us_1\": " << r.us[0] << ", \"us_8\": " << r.us[1] << ", \"us_16\": " << r.us[2]
           << "}";
    }
    json << "]}\n";
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
