// GPU benchmark of one decode step's RoPE + KV store + attention (rope_attention, 1 row) at the
// 8B shape (32 query heads, 8 kv heads, head_dim 128), the cache sized as the decoder's graph
// sees it (capacity 2 x context), at contexts 512, 2048 and 4096.
// Usage: bench_cuda_attention
// Timing: a CUDA graph of 32 calls, call i on layer i's cache (32 layers: several times the
// 50 MB L2 from 512 keys on, as in a decode step), replayed 30 times between events; median
// microseconds per call, with programmatic dependent launch on (consecutive calls overlap as
// they would not in a decoder, where GEMVs lie between them) and off (each call's own time,
// launch gap included).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "core/error.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_graph.hpp"
#include "kernels/cuda/decoder_kernels.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/device_buffer.hpp"
#include "kernels/cuda/pdl_launch.hpp"
#include "kernels/cuda/stream.hpp"

namespace {

using namespace uq::cuda;

constexpr int kLayers = 32;
constexpr int kReps = 30;
constexpr int kHeads = 32;
constexpr int kKvHeads = 8;
constexpr int kHeadDim = 128;

DeviceBuffer<float> random_buffer(std::size_t count, std::mt19937& random) {
  std::normal_distribution<float> draw(0.0f, 1.0f);
  std::vector<float> host(count);
  for (auto& v : host) v = draw(random);
  DeviceBuffer<float> buffer(count);
  buffer.upload(host);
  return buffer;
}

double step_us(int context, bool pdl, std::mt19937& random) {
  set_programmatic_launch_enabled(pdl);
  const AttentionShape shape{kHeads, kKvHeads, kHeadDim, 0};
  const int capacity = 2 * context;
  const int kv_width = kKvHeads * kHeadDim;
  const int qkv_width = (kHeads + 2 * kKvHeads) * kHeadDim;
  Stream stream;
  auto qkv = random_buffer(static_cast<std::size_t>(qkv_width), random);
  auto keys = random_buffer(static_cast<std::size_t>(kLayers) * capacity * kv_width, random);
  auto values = random_buffer(static_cast<std::size_t>(kLayers) * capacity * kv_width, random);
  std::vector<float> host_frequencies(kHeadDim / 2);
  for (int i = 0; i < kHeadDim / 2; ++i)
    host_frequencies[i] = std::pow(500000.0f, -2.0f * static_cast<float>(i) / kHeadDim);
  DeviceBuffer<float> frequencies(host_frequencies.size());
  frequencies.upload(host_frequencies);
  DeviceBuffer<int> position(1);
  position.upload(std::vector<int>{context});
  DeviceBuffer<float> workspace(attention_workspace_floats(shape, 1, capacity));
  workspace.fill_bytes(0);
  DeviceBuffer<float> out(static_cast<std::size_t>(kHeads) * kHeadDim);
  UQ_CUDA_CHECK(cudaDeviceSynchronize());
  const std::size_t layer_floats = static_cast<std::size_t>(capacity) * kv_width;
  CapturedGraph graph;
  graph.capture(stream.get(), [&] {
    for (int layer = 0; layer < kLayers; ++layer) {
      rope_attention(qkv.data(), 1, qkv_width, frequencies.data(), position.data(), capacity,
                     keys.data() + layer * layer_floats, values.data() + layer * layer_floats,
                     shape, workspace.data(), out.data(), stream.get());
    }
  });
  for (int w = 0; w < 3; ++w) graph.launch(stream.get());
  Event start, stop;
  std::vector<double> samples;
  for (int r = 0; r < kReps; ++r) {
    start.record(stream.get());
    graph.launch(stream.get());
    stop.record(stream.get());
    samples.push_back(1000.0 * stop.elapsed_ms_since(start) / kLayers);
  }
  std::nth_element(samples.begin(), samples.begin() + kReps / 2, samples.end());
  return samples[kReps / 2];
}

}  // namespace

int main() try {
  if (cuda_device_count() == 0) {
    std::printf("no CUDA GPU\n");
    return 0;
  }
  std::mt19937 random(7);
  std::printf("rope_attention, 1 row, 32/8 heads, head_dim 128 (us per call, median)\n");
  std::printf("%8s %10s %10s\n", "context", "pdl on", "pdl off");
  for (const int context : {512, 2048, 4096}) {
    const double on = step_us(context, true, random);
    const double off = step_us(context, false, random);
    std::printf("%8d %10.2f %10.2f\n", context, on, off);
  }
  set_programmatic_launch_enabled(true);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
