// GPU benchmark of the affine GEMV against cuBLAS bf16 and the device copy bandwidth.
// Usage: bench_cuda_gemv [--json FILE] [--quick]
// Shapes (out x in) 4096x4096, 6144x4096 (fused q|k|v), 14336x4096, 28672x4096 (fused gate|up),
// 4096x14336 (down_proj), 128256x4096 (lm_head) (4-bit; 14336x4096 also 2, 3 and 8 bits) x
// rows 1, 2, 8, 16, 17, 24, 32, 48, 64, 512 (17-64: the crossover between 16-row passes and the
// tiled kernel); --quick: 14336x4096 4-bit only. -1 in the JSON: not timed.
// Timing: CUDA graphs of `kBatch` launches, each on the next of several weight copies (so the
// 50 MB L2 cannot hold them), replayed `kReps` times between events; median per launch.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "core/error.hpp"
#include "kernels/cuda/affine_gemv.hpp"
#include "kernels/cuda/cublas_library.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/stream.hpp"

namespace {

using namespace uq::cuda;

constexpr int kBatch = 20;
constexpr int kReps = 30;
constexpr int kGroupSize = 64;

// Median microseconds of one launch(i) call, i = 0.. cycling over the weight copies.
double time_us(cudaStream_t stream, const std::function<void(int)>& launch) {
  cudaGraph_t graph;
  UQ_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < kBatch; ++i) launch(i);
  UQ_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec;
  UQ_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  for (int w = 0; w < 3; ++w) UQ_CUDA_CHECK(cudaGraphLaunch(exec, stream));
  Event start, stop;
  std::vector<double> samples;
  for (int r = 0; r < kReps; ++r) {
    start.record(stream);
    UQ_CUDA_CHECK(cudaGraphLaunch(exec, stream));
    stop.record(stream);
    samples.push_back(1000.0 * stop.elapsed_ms_since(start) / kBatch);
  }
  UQ_CUDA_CHECK(cudaGraphExecDestroy(exec));
  UQ_CUDA_CHECK(cudaGraphDestroy(graph));
  std::nth_element(samples.begin(), samples.begin() + kReps / 2, samples.end());
  return samples[kReps / 2];
}

// Enough copies that one pass over them is several times the L2.
int copies_for(std::size_t bytes, std::size_t l2_bytes) {
  return static_cast<int>(std::clamp<std::size_t>(4 * l2_bytes / bytes + 1, 2, 64));
}

double copy_bandwidth_gbs(cudaStream_t stream) {
  const std::size_t bytes = std::size_t(1) << 30;
  DeviceBuffer<unsigned char> a(bytes), b(bytes);
  a.fill_bytes(1);
  b.fill_bytes(2);
  Event start, stop;
  std::vector<double> ms;
  for (int r = 0; r < 12; ++r) {
    start.record(stream);
    UQ_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, stream));
    stop.record(stream);
    ms.push_back(stop.elapsed_ms_since(start));
  }
  std::sort(ms.begin(), ms.end());
  return 2.0 * double(bytes) / (ms[ms.size() / 2] * 1e-3) / 1e9;  // read + write
}

struct Shape {
  int out, in;
};

constexpr double kNotTimed = -1.0;

struct Row {
  Shape shape;
  int bits, rows;
  double auto_us, gbs, tflops, stream_mma_us, stream_us, persistent_us, tensor_us, simt_us,
      tiled_us, tiled_bf16_us, cublas_us;
};

// Random bf16 bits of magnitude 2^-7 .. 2^-3 and either sign: cheap enough for 10^9 elements.
std::vector<std::uint16_t> random_bf16(std::mt19937_64& rng, std::size_t n) {
  std::vector<std::uint16_t> v(n);
  for (std::size_t k = 0; k < n; k += 4) {
    std::uint64_t bits = rng();
    for (std::size_t j = k; j < std::min(n, k + 4); ++j, bits >>= 16) {
      const auto r = static_cast<std::uint32_t>(bits & 0xFFFF);
      v[j] =
          static_cast<std::uint16_t>((r & 0x8000u) | ((120u + ((r >> 7) & 3u)) << 7) | (r & 0x7Fu));
    }
  }
  return v;
}

std::string us_or_dash(double us) {
  if (us == kNotTimed) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", us);
  return text;
}

}  // namespace

int main(int argc, char** argv) try {
  std::string json_path;
  bool quick = false;
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a];
    if (arg == "--json" && a + 1 < argc)
      json_path = argv[++a];
    else if (arg == "--quick")
      quick = true;
    else
      uq::fail("bench_cuda_gemv: unknown option '", arg, "'");
  }
  if (cuda_device_count() == 0) uq::fail("bench_cuda_gemv: no CUDA GPU");
  const DeviceProperties props = device_properties(0);
  std::printf("device: %s, %d SMs, L2 %zu MB, %zu GiB\n", props.name.c_str(), props.multiprocessors,
              props.l2_cache_bytes >> 20, props.global_memory_bytes >> 30);

  Stream stream;
  CublasHandle cublas;
  DeviceBuffer<unsigned char> cublas_workspace(32u << 20);
  UQ_CUDA_CHECK(uq::cuda::cublas_library().set_stream(cublas.get(), stream.get()));
  UQ_CUDA_CHECK(uq::cuda::cublas_library().set_workspace(cublas.get(), cublas_workspace.data(),
                                                         cublas_workspace.bytes()));

  const double copy_gbs = copy_bandwidth_gbs(stream.get());
  std::printf("device copy (D2D 1 GiB, read+write): %.0f GB/s\n", copy_gbs);

  std::mt19937_64 rng(2026);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const std::vector<Shape> shapes =
      quick ? std::vector<Shape>{{14336, 4096}}
            : std::vector<Shape>{{4096, 4096},  {6144, 4096},  {14336, 4096},
                                 {28672, 4096}, {4096, 14336}, {128256, 4096}};
  const std::vector<int> row_list = {1, 2, 8, 16, 17, 24, 32, 48, 64, 512};
  const int max_rows = row_list.back();
  std::vector<Row> results;

  for (const Shape shape : shapes) {
    const std::size_t elements = std::size_t(shape.out) * shape.in;
    std::vector<float> x_host(std::size_t(max_rows) * shape.in);
    for (auto& v : x_host) v = normal(rng);
    std::vector<std::uint16_t> x_bf16_host(x_host.size());
    for (std::size_t k = 0; k < x_host.size(); ++k) x_bf16_host[k] = uq::f32_to_bf16(x_host[k]);
    DeviceBuffer<float> x(x_host.size());
    x.upload(x_host);
    DeviceBuffer<std::uint16_t> x_bf16(x_host.size());
    x_bf16.upload(x_bf16_host);
    DeviceBuffer<float> y(std::size_t(max_rows) * shape.out);
    DeviceBuffer<std::uint16_t> y_bf16(std::size_t(max_rows) * shape.out);

    // cuBLAS bf16 baseline: y[rows, out] = x[rows, in] . W^T with W [out, in] row-major.
    std::vector<double> cublas_us(max_rows + 1);
    {
      const std::vector<std::uint16_t> w_host = random_bf16(rng, elements);
      std::vector<DeviceBuffer<std::uint16_t>> copies;
      const int n = copies_for(elements * 2, props.l2_cache_bytes);
      for (int c = 0; c < n; ++c) {
        copies.emplace_back(elements);
        copies.back().upload(w_host);
      }
      for (int rows : row_list) {
        const float alpha = 1.0f, beta = 0.0f;
        cublas_us[rows] = time_us(stream.get(), [&](int i) {
          UQ_CUDA_CHECK(uq::cuda::cublas_library().gemm_ex(
              cublas.get(), CUBLAS_OP_T, CUBLAS_OP_N, shape.out, rows, shape.in, &alpha,
              copies[i % n].data(), CUDA_R_16BF, shape.in, x_bf16.data(), CUDA_R_16BF, shape.in,
              &beta, y_bf16.data(), CUDA_R_16BF, shape.out, CUBLAS_COMPUTE_32F,
              CUBLAS_GEMM_DEFAULT));
        });
      }
    }

    const bool all_bits = !quick && shape.out == 14336 && shape.in == 4096;
    for (int bits : all_bits ? std::vector<int>{2, 3, 4, 8} : std::vector<int>{4}) {
      std::vector<std::uint32_t> codes(elements * bits / 32);
      for (auto& word : codes) word = static_cast<std::uint32_t>(rng());
      std::vector<std::uint16_t> scales(elements / kGroupSize), biases(elements / kGroupSize);
      for (std::size_t g = 0; g < scales.size(); ++g) {
        scales[g] = uq::f32_to_bf16(0.01f + 0.001f * std::abs(normal(rng)));
        biases[g] = uq::f32_to_bf16(-0.01f * float(1 << (bits - 1)));
      }
      const AffineHostWeight host{"bench",    shape.out, shape.in, bits,
                                  kGroupSize, codes,     scales,   biases};
      std::vector<AffineDeviceWeight> copies;
      const AffineDeviceWeight first(host);
      const int n = copies_for(first.bytes(), props.l2_cache_bytes);
      for (int c = 0; c < n; ++c) copies.emplace_back(host);
      // The persistent kernel's x fragments live in caller-owned scratch, as in the decoder.
      uq::cuda::GemvScratch scratch;
      for (int rows : row_list) {
        auto time_kernel = [&](GemvKernel kernel) {
          // One eager product sizes the scratch: it does not grow while a graph is captured.
          affine_gemv_cuda(first, x.data(), rows, y.data(), stream.get(), kernel, false, &scratch);
          return time_us(stream.get(), [&](int i) {
            affine_gemv_cuda(copies[i % n], x.data(), rows, y.data(), stream.get(), kernel, false,
                             &scratch);
          });
        };
        const double auto_us = time_kernel(GemvKernel::automatic);
        // Past 16 rows the 1..16-row kernels loop over 16-row passes: timed up to 64 rows (the
        // crossover with the tiled kernel); simt only up to 16.
        const bool passes = rows <= 64;
        // The stream kernels: 1-2 rows, timed only where the shape suits them.
        const double stream_mma_us = rows <= 2 && uq::cuda::mma_stream_gemv_supported(first)
                                         ? time_kernel(GemvKernel::stream_mma)
                                         : kNotTimed;
        const double stream_us = rows <= 2 && uq::cuda::stream_gemv_supported(first)
                                     ? time_kernel(GemvKernel::stream)
                                     : kNotTimed;
        const double persistent_us = passes ? time_kernel(GemvKernel::persistent) : kNotTimed;
        const double tensor_us = passes ? time_kernel(GemvKernel::tensor_cores) : kNotTimed;
        const double simt_us = rows <= 16 ? time_kernel(GemvKernel::simt) : kNotTimed;
        const double tiled_us = time_kernel(GemvKernel::tiled);
        const double tiled_bf16_us = time_us(stream.get(), [&](int i) {
          affine_gemv_cuda(copies[i % n], reinterpret_cast<const __nv_bfloat16*>(x_bf16.data()),
                           rows, y.data(), stream.get(), GemvKernel::tiled);
        });
        const double flops = 2.0 * rows * double(elements);
        results.push_back({shape, bits, rows, auto_us, double(first.bytes()) / (auto_us * 1e3),
                           flops / (auto_us * 1e6), stream_mma_us, stream_us, persistent_us,
                           tensor_us, simt_us, tiled_us, tiled_bf16_us, cublas_us[rows]});
      }
    }
  }

  std::printf(
      "\nx f32, group %d. us: the default (automatic) kernel; GB/s: its weight bytes "
      "(codes + scales + biases) / time; TFLOP/s: 2 rows out in / time; mma_str_us, stream_us, "
      "persist_us, "
      "tensor_us, simt_us, tiled_us: each kernel forced (- = not timed); tiled_bf16: tiled with x "
      "bf16; x cuBLAS: "
      "cublas_us / us\n",
      kGroupSize);
  std::printf("%-12s %4s %4s %9s %7s %6s %7s %10s %9s %10s %9s %9s %9s %10s %10s %9s\n", "out x in",
              "bits", "rows", "us", "GB/s", "%copy", "TFLOP/s", "mma_str_us", "stream_us",
              "persist_us", "tensor_us", "simt_us", "tiled_us", "tiled_bf16", "cublas_us",
              "x cuBLAS");
  for (const Row& r : results)
    std::printf(
        "%6dx%-5d %4d %4d %9.2f %7.0f %5.0f%% %7.1f %10s %9s %10s %9s %9s %9s %10.2f %10.2f "
        "%8.2fx\n",
        r.shape.out, r.shape.in, r.bits, r.rows, r.auto_us, r.gbs, 100.0 * r.gbs / copy_gbs,
        r.tflops, us_or_dash(r.stream_mma_us).c_str(), us_or_dash(r.stream_us).c_str(),
        us_or_dash(r.persistent_us).c_str(), us_or_dash(r.tensor_us).c_str(),
        us_or_dash(r.simt_us).c_str(), us_or_dash(r.tiled_us).c_str(), r.tiled_bf16_us, r.cublas_us,
        r.cublas_us / r.auto_us);

  if (!json_path.empty()) {
    std::ofstream json(json_path);
    json << "{\"device\": \"" << props.name << "\", \"copy_gbs\": " << copy_gbs
         << ", \"group_size\": " << kGroupSize << ", \"x\": \"f32\", \"results\": [";
    for (std::size_t k = 0; k < results.size(); ++k) {
      const Row& r = results[k];
      json << (k ? ", " : "") << "{\"out\": " << r.shape.out << ", \"in\": " << r.shape.in
           << ", \"bits\": " << r.bits << ", \"rows\": " << r.rows << ", \"us\": " << r.auto_us
           << ", \"weight_gbs\": " << r.gbs << ", \"tflops\": " << r.tflops
           << ", \"stream_mma_us\": " << r.stream_mma_us << ", \"stream_us\": " << r.stream_us
           << ", \"persistent_us\": " << r.persistent_us << ", \"tensor_us\": " << r.tensor_us
           << ", \"simt_us\": " << r.simt_us << ", \"tiled_us\": " << r.tiled_us
           << ", \"tiled_bf16_x_us\": " << r.tiled_bf16_us
           << ", \"cublas_bf16_us\": " << r.cublas_us
           << ", \"ratio_to_cublas\": " << r.cublas_us / r.auto_us << "}";
    }
    json << "]}\n";
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
