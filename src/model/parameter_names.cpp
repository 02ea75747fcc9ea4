#include "model/parameter_names.hpp"

namespace uq {

std::vector<ModuleShape> module_shapes(const ModelConfig& config) {
  const std::int64_t hidden = config.hidden_size;
  const std::int64_t q_width = config.num_attention_heads * config.head_dim;
  const std::int64_t kv_width = config.num_key_value_heads * config.head_dim;
  const std::int64_t inner = config.intermediate_size;
  std::vector<ModuleShape> modules;
  std::vector<std::string> embed_aliases;
  if (config.tie_word_embeddings) embed_aliases.push_back("lm_head");
  modules.push_back({"model.embed_tokens", config.vocab_size, hidden, embed_aliases});
  for (std::int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string prefix = "model.layers." + std::to_string(i) + ".";
    modules.push_back({prefix + "self_attn.q_proj", q_width, hidden, {}});
    modules.push_back({prefix + "self_attn.k_proj", kv_width, hidden, {}});
    modules.push_back({prefix + "self_attn.v_proj", kv_width, hidden, {}});
    modules.push_back({prefix + "self_attn.o_proj", hidden, q_width, {}});
    modules.push_back({prefix + "mlp.gate_proj", inner, hidden, {}});
    modules.push_back({prefix + "mlp.up_proj", inner, hidden, {}});
    modules.push_back({prefix + "mlp.down_proj", hidden, inner, {}});
  }
  if (!config.tie_word_embeddings) modules.push_back({"lm_head", config.vocab_size, hidden, {}});
  return modules;
}

std::vector<VectorShape> vector_shapes(const ModelConfig& config) {
  const std::int64_t hidden = config.hidden_size;
  const std::int64_t q_width = config.num_attention_heads * config.head_dim;
  const std::int64_t kv_width = config.num_key_value_heads * config.head_dim;
  const std::int64_t inner = config.intermediate_size;
  std::vector<VectorShape> vectors;
  for (std::int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string prefix = "model.layers." + std::to_string(i) + ".";
    const std::string attn = prefix + "self_attn.";
    const std::string mlp = prefix + "mlp.";
    vectors.push_back({prefix + "input_layernorm.weight", hidden});
    vectors.push_back({prefix + "post_attention_layernorm.weight", hidden});
    if (config.attention_bias) {
      vectors.push_back({attn + "q_proj.bias", q_width});
      vectors.push_back({attn + "k_proj.bias", kv_width});
      vectors.push_back({attn + "v_proj.bias", kv_width});
    }
    if (config.o_proj_bias) vectors.push_back({attn + "o_proj.bias", hidden});
    if (config.mlp_bias) {
      vectors.push_back({mlp + "gate_proj.bias", inner});
      vectors.push_back({mlp + "up_proj.bias", inner});
      vectors.push_back({mlp + "down_proj.bias", hidden});
    }
  }
  vectors.push_back({"model.norm.weight", hidden});
  return vectors;
}

}  // namespace uq
