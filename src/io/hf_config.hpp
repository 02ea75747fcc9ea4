#pragma once
// The architecture described by a Hugging Face config.json (llama, mistral and
// qwen2 families): everything the decoder needs to be built and run.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.hpp"

namespace uq {

// How rotary frequencies are derived from the base theta (HF "rope_type").
struct RopeScaling {
  enum class Kind { Default, Linear, Llama3 };
  Kind kind = Kind::Default;
  double factor = 1.0;
  // llama3 only.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  std::int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string model_type;  // "llama", "mistral" or "qwen2"
  std::int64_t hidden_size = 0;
  std::int64_t num_hidden_layers = 0;
  std::int64_t num_attention_heads = 0;
  std::int64_t num_key_value_heads = 0;
  std::int64_t head_dim = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t vocab_size = 0;
  std::int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool attention_bias = false;  // q/k/v (and for llama also o) projections have biases
  bool o_proj_bias = false;
  bool mlp_bias = false;
  bool tie_word_embeddings = false;
  // Layers with sliding-window attention attend to at most `sliding_window`
  // latest keys (the query's own included); the others attend to all.
  std::optional<std::int64_t> sliding_window;
  std::vector<bool> layer_uses_sliding_window;  // one entry per layer
  std::vector<std::int32_t> bos_token_ids;
  std::vector<std::int32_t> eos_token_ids;
  DType dtype = DType::F32;  // the checkpoint's torch dtype
  nlohmann::json raw;        // the whole config.json, for writers that copy or extend it
};

// Parses and validates config.json; throws uq::Error naming the file and the
// field at fault.
ModelConfig load_model_config(const std::filesystem::path& path);
// The same from an already parsed object; `origin` names it in errors.
ModelConfig parse_model_config(const nlohmann::json& raw, const std::string& origin);

}  // namespace uq
