#include "support/test_support.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>

#include "io/hf_config.hpp"
#include "io/safetensors.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "model/decoder.hpp"
#include "model/float_weight.hpp"
#include "model/tensor_source.hpp"
#include "quant/affine_weight.hpp"

namespace uq::test {
namespace {

std::string read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

std::filesystem::path source_path(const std::string& relative) {
  return std::filesystem::path(UQ_SOURCE_DIR) / relative;
}

std::filesystem::path bundled_model() {
  return source_path("models/tiny-llama");
}

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::string read_text(const std::filesystem::path& path) {
  return read_all(path);
}

void expect_same_files(const std::filesystem::path& expected, const std::filesystem::path& actual) {
  std::size_t count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(expected)) {
    const auto name = entry.path().filename();
    ASSERT_TRUE(std::filesystem::exists(actual / name)) << name;
    EXPECT_TRUE(read_text(entry.path()) == read_text(actual / name)) << name << " differs";
    ++count;
  }
  EXPECT_EQ(count,
            static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(actual),
                                                   std::filesystem::directory_iterator{})));
}

const BundledModel& bundled() {
  static const BundledModel value = [] {
    BundledModel loaded;
    loaded.model = load_model(bundled_model());
    loaded.val_ids = loaded.model->tokenizer()->encode(read_text(source_path("data/val.txt")));
    return loaded;
  }();
  return value;
}

CommandResult run_command(const std::vector<std::string>& argv) {
  TempDir capture;
  const auto out_path = capture / "stdout";
  const auto err_path = capture / "stderr";
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    dup2(null_fd, 0);
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = read_all(out_path);
  result.err = read_all(err_path);
  return result;
}

CommandResult run_uq(const std::vector<std::string>& args) {
  std::vector<std::string> argv{UQ_CLI};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

bool python_available() {
  return std::filesystem::exists(UQ_PYTHON);
}

CommandResult run_oracle(const std::string& script, const std::vector<std::string>& args) {
  std::vector<std::string> argv{UQ_PYTHON, source_path("tests/oracle/" + script).string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  std::random_device entropy;
  path_ = std::filesystem::temp_directory_path() /
          ("uq-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + "-" +
           std::to_string(entropy()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::shared_ptr<Model> bundled_affine(int bits) {
  auto model = load_model(bundled_model());
  for (auto& slot : model->weight_slots()) {
    const auto& source = dynamic_cast<const FloatWeight&>(*slot.weight);
    slot.weight =
        AffineWeight::quantize(source.bytes().data(), source.dtype(), source.out_features(),
                               source.in_features(), bits, 64, slot.path);
  }
  return model;
}

std::shared_ptr<Model> bundled_with_random_biases(const ModelConfig& config) {
  // The model may keep reading the mapped checkpoint: it stays open for the process.
  static const Checkpoint checkpoint = Checkpoint::open(bundled_model());
  static const TensorSource stored = checkpoint_tensors(checkpoint);
  std::map<std::string, std::vector<float>> biases;
  std::mt19937 random(7);
  std::normal_distribution<float> draw(0.0f, 0.05f);
  const std::int64_t kv_width = config.num_key_value_heads * config.head_dim;
  for (std::int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    const std::string prefix = "model.layers." + std::to_string(layer) + ".";
    const std::pair<std::string, std::int64_t> shapes[] = {
        {"self_attn.q_proj", config.num_attention_heads * config.head_dim},
        {"self_attn.k_proj", kv_width},
        {"self_attn.v_proj", kv_width},
        {"self_attn.o_proj", config.hidden_size},
        {"mlp.gate_proj", config.intermediate_size},
        {"mlp.up_proj", config.intermediate_size},
        {"mlp.down_proj", config.hidden_size}};
    for (const auto& [name, width] : shapes) {
      auto& bias = biases[prefix + name + ".bias"];
      bias.resize(static_cast<std::size_t>(width));
      for (auto& b : bias) b = draw(random);
    }
  }
  TensorSource tensors;
  tensors.contains = [&](const std::string& name) {
    return biases.contains(name) || stored.contains(name);
  };
  tensors.tensor = [&](const std::string& name) {
    const auto found = biases.find(name);
    if (found == biases.end()) return stored.tensor(name);
    TensorView view;
    view.name = name;
    view.dtype = DType::F32;
    view.shape = {static_cast<std::int64_t>(found->second.size())};
    view.data = reinterpret_cast<const std::byte*>(found->second.data());
    view.nbytes = found->second.size() * sizeof(float);
    return view;
  };
  // The biases are copied into the model's layers here; `biases` may go.
  return std::make_shared<Model>(config, tensors, float_weights(tensors));
}

std::string val_text_head(const TempDir& dir, std::size_t bytes) {
  std::string text = read_text(source_path("data/val.txt"));
  text.resize(text.rfind('\n', bytes) + 1);
  const auto path = dir / "val_head.txt";
  std::ofstream(path, std::ios::binary) << text;
  return path.string();
}

std::vector<float> read_f32_tensor(const std::filesystem::path& file, const std::string& name) {
  return SafetensorsFile::open(file)->tensor(name).to_f32();
}

double relative_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double error = 0.0;
  double norm = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double diff = static_cast<double>(got[i]) - want[i];
    error += diff * diff;
    norm += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(error / norm);
}

}  // namespace uq::test
