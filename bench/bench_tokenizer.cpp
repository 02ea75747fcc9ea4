// Encoding throughput of the bundled tokenizer on data/val.txt (MB/s of text).
// "Cold" builds a fresh tokenizer per iteration (empty word cache); "Warm" reuses one.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "io/tokenizer/tokenizer.hpp"

namespace {

// The repository root: the first directory above the executable (or the
// working directory) that holds the bundled model.
std::filesystem::path repo_root() {
  for (auto dir : {std::filesystem::canonical("/proc/self/exe").parent_path(),
                   std::filesystem::current_path()}) {
    for (; !dir.empty() && dir != dir.root_path(); dir = dir.parent_path()) {
      if (std::filesystem::exists(dir / "models/tiny-llama/tokenizer.json")) return dir;
    }
  }
  throw std::runtime_error("cannot find models/tiny-llama above the executable or working dir");
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

void BM_EncodeValCold(benchmark::State& state) {
  const auto root = repo_root();
  const std::string text = read_file(root / "data/val.txt");
  for (auto _ : state) {
    state.PauseTiming();
    const auto tokenizer = uq::Tokenizer::from_file(root / "models/tiny-llama/tokenizer.json");
    state.ResumeTiming();
    benchmark::DoNotOptimize(tokenizer.encode(text));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_EncodeValCold)->Unit(benchmark::kMillisecond);

void BM_EncodeValWarm(benchmark::State& state) {
  const auto root = repo_root();
  const std::string text = read_file(root / "data/val.txt");
  const auto tokenizer = uq::Tokenizer::from_file(root / "models/tiny-llama/tokenizer.json");
  std::size_t ids = tokenizer.encode(text).size();
  for (auto _ : state) benchmark::DoNotOptimize(ids = tokenizer.encode(text).size());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(ids);
}
BENCHMARK(BM_EncodeValWarm)->Unit(benchmark::kMillisecond);

void BM_DecodeVal(benchmark::State& state) {
  const auto root = repo_root();
  const std::string text = read_file(root / "data/val.txt");
  const auto tokenizer = uq::Tokenizer::from_file(root / "models/tiny-llama/tokenizer.json");
  const auto ids = tokenizer.encode(text);
  for (auto _ : state) benchmark::DoNotOptimize(tokenizer.decode(ids));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_DecodeVal)->Unit(benchmark::kMillisecond);

void BM_LoadTokenizer(benchmark::State& state) {
  const auto path = repo_root() / "models/tiny-llama/tokenizer.json";
  for (auto _ : state) benchmark::DoNotOptimize(uq::Tokenizer::from_file(path));
}
BENCHMARK(BM_LoadTokenizer)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
