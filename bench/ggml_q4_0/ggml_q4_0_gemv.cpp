// ggml's Q4_0 x f32 matrix-vector product (ggml_mul_mat on the CPU backend),
// timed like bench_quant_kernels.cpp's BM_AffineGemv: weights rotate through
// copies totalling >= 256 MiB so every product streams its weight from DRAM,
// and bytes_per_second counts the weight bytes (codes + fp16 scales). Built
// against an external ggml by run.sh; not part of the project's build.
#include <benchmark/benchmark.h>
#include <ggml-cpu.h>
#include <ggml.h>

#include <cstring>
#include <random>
#include <vector>

namespace {

constexpr std::size_t kRotationBytes = std::size_t{256} << 20;

// Args: out, in, threads.
void BM_GgmlQ4_0Gemv(benchmark::State& state) {
  const auto out = state.range(0);
  const auto in = state.range(1);
  const int threads = static_cast<int>(state.range(2));

  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> weight(static_cast<std::size_t>(out * in));
  for (auto& v : weight) v = normal(rng);
  const std::size_t weight_bytes =
      ggml_row_size(GGML_TYPE_Q4_0, in) * static_cast<std::size_t>(out);
  const std::size_t copies =
      std::max<std::size_t>(2, (kRotationBytes + weight_bytes - 1) / weight_bytes);

  ggml_init_params params{};
  params.mem_size = copies * (weight_bytes + ggml_graph_overhead() + 4 * ggml_tensor_overhead() +
                              static_cast<std::size_t>(out + in) * sizeof(float)) +
                    (std::size_t{16} << 20);
  params.no_alloc = false;
  ggml_context* ctx = ggml_init(params);

  ggml_tensor* x = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, in);
  auto* xs = static_cast<float*>(x->data);
  for (std::int64_t i = 0; i < in; ++i) xs[i] = normal(rng);

  std::vector<ggml_cgraph*> graphs;
  std::vector<std::uint8_t> packed(weight_bytes);
  ggml_quantize_chunk(GGML_TYPE_Q4_0, weight.data(), packed.data(), 0, out, in, nullptr);
  for (std::size_t k = 0; k < copies; ++k) {
    ggml_tensor* w = ggml_new_tensor_2d(ctx, GGML_TYPE_Q4_0, in, out);
    std::memcpy(w->data, packed.data(), weight_bytes);
    ggml_cgraph* graph = ggml_new_graph(ctx);
    ggml_build_forward_expand(graph, ggml_mul_mat(ctx, w, x));
    graphs.push_back(graph);
  }

  ggml_threadpool_params pool_params = ggml_threadpool_params_default(threads);
  ggml_threadpool* pool = ggml_threadpool_new(&pool_params);
  ggml_cplan plan = ggml_graph_plan(graphs[0], threads, pool);
  std::vector<std::uint8_t> work(plan.work_size + 64);
  plan.work_data = work.data();

  std::size_t next = 0;
  for (auto _ : state) {
    ggml_graph_compute(graphs[next], &plan);
    next = (next + 1) % graphs.size();
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * weight_bytes));
  ggml_threadpool_free(pool);
  ggml_free(ctx);
}
BENCHMARK(BM_GgmlQ4_0Gemv)
    ->ArgNames({"out", "in", "threads"})
    ->ArgsProduct({{4096, 14336}, {4096}, {1, 2}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  ggml_cpu_init();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
