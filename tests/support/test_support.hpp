#pragma once
// Helpers shared by the tests: repository paths, running `uq` and the Python
// oracles, temporary directories.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace uq {
class Model;
struct ModelConfig;
}  // namespace uq

namespace uq::test {

std::filesystem::path source_path(const std::string& relative);  // under the repo root
std::filesystem::path bundled_model();                           // models/tiny-llama

nlohmann::json read_json(const std::filesystem::path& path);
std::string read_text(const std::filesystem::path& path);  // whole file, bytes as they are
// Every file of directory `expected` exists in `actual` with the same bytes, and no other
// (gtest expectations).
void expect_same_files(const std::filesystem::path& expected, const std::filesystem::path& actual);
// Tensor `name` of safetensors file `file` as float32.
std::vector<float> read_f32_tensor(const std::filesystem::path& file, const std::string& name);
// ‖got − want‖₂ / ‖want‖₂ in double (NaN if got holds a NaN, so no bound passes).
double relative_l2(const std::vector<float>& got, const std::vector<float>& want);

// The bundled float model and data/val.txt tokenized with its tokenizer,
// loaded once per test process.
struct BundledModel {
  std::shared_ptr<const Model> model;
  std::vector<std::int32_t> val_ids;
};
const BundledModel& bundled();

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
// Runs a command (argv[0] looked up in PATH unless it has a slash), capturing output.
CommandResult run_command(const std::vector<std::string>& argv);
// Runs the `uq` command built with the tests.
CommandResult run_uq(const std::vector<std::string>& args);

// True when the oracle venv exists; tests that need it GTEST_SKIP() otherwise.
bool python_available();
// Runs tests/oracle/<script> with the venv's python.
CommandResult run_oracle(const std::string& script, const std::vector<std::string>& args);

// A fresh directory removed with its contents at scope exit.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// The bundled model's weights under `config` (its own config with projection biases turned on,
// and whatever else a test varies): every decoder projection gets random biases, N(0, 0.05²)
// from seed 7, so each of them moves the logits.
std::shared_ptr<Model> bundled_with_random_biases(const ModelConfig& config);

// The bundled model with every matrix quantized to MLX affine `bits`, group 64.
std::shared_ptr<Model> bundled_affine(int bits);

// Writes the whole lines of data/val.txt within its first `bytes` bytes into `dir` and returns
// the file's path: a short evaluation text for tests that compare perplexities, not measure them.
std::string val_text_head(const TempDir& dir, std::size_t bytes);

}  // namespace uq::test
