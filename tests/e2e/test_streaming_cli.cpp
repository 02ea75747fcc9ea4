// `uq synth` and streaming `uq quantize` end to end: a >= 1 GB synthetic
// checkpoint quantized with --memory-efficient stays under 25% of its size in
// peak RSS (the child's own VmHWM) and equals the in-memory result bit for bit;
// SIGINT/SIGKILL mid-run leave no output that loads as complete, and a rerun
// overwrites cleanly. Calibrated methods stream block by block to the same
// files as in memory.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "io/safetensors.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {
namespace fs = std::filesystem;
using test::read_json;
using test::run_uq;
using test::TempDir;

// Starts `uq args...` with output discarded; the caller signals and reaps it.
pid_t spawn_uq(const std::vector<std::string>& args) {
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<std::string> argv{UQ_CLI};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> raw;
    for (auto& arg : argv) raw.push_back(arg.data());
    raw.push_back(nullptr);
    // The child's output is not wanted; if /dev/null cannot be opened it goes to the parent's.
    if (std::freopen("/dev/null", "w", stdout) == nullptr ||
        std::freopen("/dev/null", "w", stderr) == nullptr)
      _exit(126);
    execv(raw[0], raw.data());
    _exit(127);
  }
  return pid;
}

// Waits until the staging directory of `out` appears (the run is mid-write),
// then sends `signal_number`; returns the wait status.
int interrupt_when_writing(pid_t pid, const fs::path& out, int signal_number) {
  const fs::path staging =
      out.parent_path() / (out.filename().string() + ".tmp-" + std::to_string(pid));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!fs::exists(staging) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(fs::exists(staging)) << "uq never started writing " << out;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(pid, signal_number);
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

std::vector<std::string> leftovers(const fs::path& dir, const std::string& name) {
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const auto file = entry.path().filename().string();
    if (file.starts_with(name + ".")) found.push_back(file);
  }
  return found;
}

TEST(StreamingCli, GigabyteCheckpointInBoundedMemoryEqualsInMemory) {
  TempDir dir;
  const fs::path synth = dir / "llama2-7b-2l";
  const auto made = run_uq({"synth", "--preset", "llama2-7b", "--layers", "2", "-o", synth.string(),
                            "--shard-size", "500MB", "--seed", "1"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::uint64_t size = Checkpoint::open(synth).total_bytes();
  ASSERT_GE(size, 1'000'000'000u);
  EXPECT_EQ(read_json(synth / "config.json")["num_hidden_layers"], 2);

  // Interrupted runs: nothing under the output name, nothing left behind.
  const fs::path out = dir / "streamed";
  const std::vector<std::string> quantize{"quantize",   synth.string(),       "-o",
                                          out.string(), "--memory-efficient", "--quiet"};
  const int interrupted = interrupt_when_writing(spawn_uq(quantize), out, SIGINT);
  EXPECT_TRUE(WIFEXITED(interrupted) && WEXITSTATUS(interrupted) == 1) << interrupted;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(leftovers(dir.path(), "streamed"), std::vector<std::string>{});
  const int killed = interrupt_when_writing(spawn_uq(quantize), out, SIGKILL);
  EXPECT_TRUE(WIFSIGNALED(killed));
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(leftovers(dir.path(), "streamed").size(), 1u);  // the dead run's staging directory
  // A stale earlier output is replaced whole.
  fs::create_directories(out);
  std::ofstream(out / "stale.txt") << "old";

  auto args = quantize;
  args.insert(args.end(), {"--json", "--chunk-size", "512"});
  const auto streamed = run_uq(args);
  ASSERT_EQ(streamed.exit_code, 0) << streamed.err;
  const auto summary = nlohmann::json::parse(streamed.out);
  EXPECT_TRUE(summary["streamed"].get<bool>());
  const auto peak = summary["peak_rss_bytes"].get<std::uint64_t>();
  EXPECT_LT(peak, size / 4) << "peak RSS " << peak << " of a " << size << "-byte checkpoint";
  EXPECT_FALSE(fs::exists(out / "stale.txt"));
  EXPECT_EQ(leftovers(dir.path(), "streamed"), std::vector<std::string>{});

  const auto in_memory =
      run_uq({"quantize", synth.string(), "-o", (dir / "memory").string(), "--json", "--quiet"});
  ASSERT_EQ(in_memory.exit_code, 0) << in_memory.err;
  EXPECT_FALSE(nlohmann::json::parse(in_memory.out)["streamed"].get<bool>());
  test::expect_same_files(dir / "memory", out);
}

TEST(StreamingCli, StreamsOnItsOwnWhenTheModelDoesNotFit) {
  TempDir dir;
  const auto streamed = test::run_command({"env", "UQ_MEMORY_LIMIT=1MB", UQ_CLI, "quantize",
                                           test::bundled_model().string(), "-o",
                                           (dir / "auto").string(), "--json", "--bits", "8"});
  ASSERT_EQ(streamed.exit_code, 0) << streamed.err;
  EXPECT_NE(streamed.err.find("streaming it from disk"), std::string::npos) << streamed.err;
  EXPECT_TRUE(nlohmann::json::parse(streamed.out)["streamed"].get<bool>());
  const auto in_memory = run_uq(
      {"quantize", test::bundled_model().string(), "-o", (dir / "memory").string(), "--bits", "8"});
  ASSERT_EQ(in_memory.exit_code, 0) << in_memory.err;
  test::expect_same_files(dir / "memory", dir / "auto");
  const auto generated =
      run_uq({"generate", (dir / "auto").string(), "--prompt", "The", "--max-new-tokens", "4"});
  EXPECT_EQ(generated.exit_code, 0) << generated.err;
}

TEST(StreamingCli, CalibratedMethodsStreamBlockByBlock) {
  TempDir dir;
  const std::string model = test::bundled_model().string();
  const std::string data = test::source_path("data/train.txt").string();
  for (const std::string method : {"gptq", "hqq"}) {
    std::vector<std::string> args{"quantize",
                                  model,
                                  "--method",
                                  method,
                                  "--calibration-data",
                                  data,
                                  "--calibration-samples",
                                  "8",
                                  "--calibration-ctx",
                                  "64",
                                  "--json",
                                  "--quiet"};
    auto memory_args = args;
    memory_args.insert(memory_args.end(), {"-o", (dir / (method + "_memory")).string()});
    const auto in_memory = run_uq(memory_args);
    ASSERT_EQ(in_memory.exit_code, 0) << in_memory.err;
    auto streamed_args = args;
    streamed_args.insert(streamed_args.end(), {"-o", (dir / (method + "_streamed")).string(),
                                               "--memory-efficient", "--chunk-size", "100"});
    const auto streamed = run_uq(streamed_args);
    ASSERT_EQ(streamed.exit_code, 0) << streamed.err;
    const auto summary = nlohmann::json::parse(streamed.out);
    EXPECT_TRUE(summary["streamed"].get<bool>());
    EXPECT_EQ(summary["method"], method);
    // The same report, reconstruction errors included.
    EXPECT_EQ(summary["layers"], nlohmann::json::parse(in_memory.out)["layers"]);
    test::expect_same_files(dir / (method + "_memory"), dir / (method + "_streamed"));
  }
  const auto generated = run_uq(
      {"generate", (dir / "gptq_streamed").string(), "--prompt", "The", "--max-new-tokens", "4"});
  EXPECT_EQ(generated.exit_code, 0) << generated.err;
}

// bnb streams in row chunks too (4-bit: codes per chunk, double quantization
// after the last; LLM.int8 per row): the same files and report as in memory,
// and the streamed directory loads and generates.
TEST(StreamingCli, BnbStreamsInRowChunks) {
  TempDir dir;
  const std::string model = test::bundled_model().string();
  const std::vector<std::vector<std::string>> variants{
      {"--bits", "4"},
      {"--bits", "4", "--bnb-4bit-quant-type", "fp4", "--bnb-no-double-quant", "--group-size",
       "1024"},
      {"--bits", "8"}};
  for (std::size_t v = 0; v < variants.size(); ++v) {
    std::vector<std::string> args{"quantize", model, "--backend", "bnb", "--json", "--quiet"};
    args.insert(args.end(), variants[v].begin(), variants[v].end());
    const fs::path memory = dir / ("memory" + std::to_string(v));
    const fs::path streamed = dir / ("streamed" + std::to_string(v));
    auto memory_args = args;
    memory_args.insert(memory_args.end(), {"-o", memory.string()});
    const auto in_memory = run_uq(memory_args);
    ASSERT_EQ(in_memory.exit_code, 0) << in_memory.err;
    auto streamed_args = args;
    streamed_args.insert(streamed_args.end(),
                         {"-o", streamed.string(), "--memory-efficient", "--chunk-size", "7"});
    const auto streaming = run_uq(streamed_args);
    ASSERT_EQ(streaming.exit_code, 0) << streaming.err;
    const auto summary = nlohmann::json::parse(streaming.out);
    EXPECT_TRUE(summary["streamed"].get<bool>());
    EXPECT_EQ(summary["layers"], nlohmann::json::parse(in_memory.out)["layers"]) << v;
    test::expect_same_files(memory, streamed);
  }
  const auto generated = run_uq(
      {"generate", (dir / "streamed0").string(), "--prompt", "The", "--max-new-tokens", "4"});
  EXPECT_EQ(generated.exit_code, 0) << generated.err;
}

TEST(StreamingCli, SynthOptionsAreChecked) {
  TempDir dir;
  auto result = run_uq({"synth", "--preset", "gpt5", "-o", (dir / "x").string()});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("unknown preset 'gpt5'"), std::string::npos) << result.err;
  result =
      run_uq({"synth", "--preset", "tiny", "--shard-size", "lots", "-o", (dir / "x").string()});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("option --shard-size 'lots'"), std::string::npos) << result.err;
  result = run_uq({"synth", "--preset", "tiny", "--dtype", "int8", "-o", (dir / "x").string()});
  EXPECT_NE(result.err.find("option --dtype 'int8'"), std::string::npos) << result.err;
  EXPECT_FALSE(fs::exists(dir / "x"));
  result = run_uq({"synth", "--preset", "tiny", "--dtype", "f16", "-o", (dir / "x").string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(read_json(dir / "x/config.json")["torch_dtype"], "float16");
  const auto generated =
      run_uq({"generate", (dir / "x").string(), "--prompt", "hello", "--max-new-tokens", "3"});
  EXPECT_EQ(generated.exit_code, 0) << generated.err;
}

}  // namespace
}  // namespace uq
