// Safetensors I/O: opening (mmap + header validation), reading a tensor
// through the mapping, and streaming a file out through the atomic writer.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <numeric>

#include "io/safetensors.hpp"

namespace {

namespace fs = std::filesystem;

// CMake compiles this file by its absolute path, so the repository is two levels up.
const fs::path kBundledModel =
    fs::path(__FILE__).parent_path().parent_path() / "models/tiny-llama/model.safetensors";

void BM_OpenBundledModel(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(uq::SafetensorsFile::open(kBundledModel));
}
BENCHMARK(BM_OpenBundledModel)->Unit(benchmark::kMicrosecond);

void BM_ReadEmbeddingAsF32(benchmark::State& state) {
  const auto file = uq::SafetensorsFile::open(kBundledModel);
  const auto view = file->tensor("model.embed_tokens.weight");
  for (auto _ : state) benchmark::DoNotOptimize(view.to_f32());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * view.nbytes));
}
BENCHMARK(BM_ReadEmbeddingAsF32)->Unit(benchmark::kMicrosecond);

// Writes a 64 MiB tensor in chunks of state.range(0) bytes, fsync and rename included.
void BM_StreamWrite(benchmark::State& state) {
  const std::size_t total = std::size_t{64} << 20;
  const auto chunk_size = static_cast<std::size_t>(state.range(0));
  std::vector<std::byte> chunk(chunk_size);
  std::iota(reinterpret_cast<unsigned char*>(chunk.data()),
            reinterpret_cast<unsigned char*>(chunk.data()) + chunk.size(), 0);
  const fs::path path =
      fs::temp_directory_path() / ("uq-bench-" + std::to_string(getpid()) + ".safetensors");
  for (auto _ : state) {
    uq::SafetensorsWriter writer(path);
    writer.declare("x", uq::DType::U8, {static_cast<std::int64_t>(total)});
    for (std::size_t done = 0; done < total; done += chunk_size) writer.write("x", chunk);
    writer.commit();
  }
  fs::remove(path);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * total));
}
BENCHMARK(BM_StreamWrite)->Arg(4 << 10)->Arg(1 << 20)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
