#pragma once
// Synthetic Hugging Face checkpoints: a model directory with the shape of a
// known model (config.json, sharded safetensors with random weights, the
// index, tokenizer files) so that big-model paths can be tested and
// benchmarked without downloads.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.hpp"

namespace uq {

struct SyntheticCheckpointOptions {
  std::string preset = "tiny";  // llama3-8b | llama2-7b | tiny (the bundled model's shape)
  std::int64_t layers = 0;      // 0: the preset's number of decoder layers
  DType dtype = DType::BF16;    // BF16, F16 or F32
  std::uint64_t max_shard_bytes = 5'000'000'000;
  std::uint64_t seed = 0;
  // Tokenizer files (tokenizer.json, tokenizer_config.json, ...) are copied
  // from here; their token ids must lie below the preset's vocabulary size.
  std::filesystem::path tokenizer_dir;
};

std::vector<std::string> synthetic_presets();  // "llama3-8b", "llama2-7b", "tiny"

// The config.json of a preset; throws uq::Error naming an unknown preset.
nlohmann::json synthetic_config(const SyntheticCheckpointOptions& options);

// Writes the checkpoint into `dir` (staged: complete or absent). Weights are
// uniform with standard deviation 0.02, norms 1; the same seed gives the same
// bytes whatever the thread count. Returns the bytes of tensor data written.
std::uint64_t write_synthetic_checkpoint(const SyntheticCheckpointOptions& options,
                                         const std::filesystem::path& dir);

}  // namespace uq
