#pragma once
// A model of a synthetic preset's shape (llama3-8b, llama2-7b, tiny) built in memory with
// random weights, for speed benchmarks: no files, no quantization pass. Float weights are bf16
// uniform with standard deviation 0.02; quantized ones are MLX affine codes drawn uniformly
// with bf16 scales and biases that give the same spread. Generation is parallel and takes
// seconds for an 8B shape.
#include <cstdint>
#include <memory>
#include <string>

namespace uq {

class Model;

struct SyntheticModelOptions {
  std::string preset = "tiny";
  std::int64_t layers = 0;  // 0: the preset's
  int bits = 16;            // 16: bf16 weights; 2..8: affine codes of that width
  int group_size = 64;
  std::uint64_t seed = 0;
};

// Throws uq::Error naming an unknown preset or unsupported bits / group size.
std::shared_ptr<Model> make_synthetic_model(const SyntheticModelOptions& options);

}  // namespace uq
