#pragma once
// Writing a quantized model directory: one model.safetensors, config.json,
// layout-specific JSON files and the tokenizer files copied from the source
// model, staged and committed atomically. Shared by the quanto and custom
// layouts (the mlx-lm layout shards and has its own writer).
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.hpp"

namespace uq {

class Model;

// A tensor to write: borrowed bytes (owned by the model, which outlives the
// save) or bytes it owns.
struct LayoutTensor {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> borrowed;
  std::vector<std::byte> owned;

  std::span<const std::byte> bytes() const { return owned.empty() ? borrowed : owned; }
};

// The model's vectors (norm weights, biases) in the model dtype.
void append_model_vectors(const Model& model, std::vector<LayoutTensor>& tensors);

// Writes `tensors` to <dir>/model.safetensors with `metadata`, `config` as
// config.json, each `json_files` entry (file name -> JSON) and the source
// model's tokenizer files, atomically: `dir` appears complete or not at all.
void write_layout_directory(const Model& model, const std::filesystem::path& dir,
                            const std::vector<LayoutTensor>& tensors,
                            const std::map<std::string, std::string>& metadata,
                            const nlohmann::json& config,
                            const std::map<std::string, nlohmann::json>& json_files);

// in_features of a Llama-family module from the model config ("down_proj"
// reads the intermediate size, "o_proj" heads × head_dim, others the hidden size).
struct ModelConfig;
std::int64_t llama_in_features(const ModelConfig& config, const std::string& module_path);

}  // namespace uq
