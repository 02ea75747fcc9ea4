#include "model/decoder.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/thread_pool.hpp"
#include "io/formats/gguf_model.hpp"
#include "io/formats/gguf_reader.hpp"
#include "io/formats/layout_detection.hpp"
#include "io/safetensors.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "model/attention.hpp"
#include "model/rms_norm.hpp"

namespace uq {
namespace {

std::shared_ptr<Weight> load_weight(const WeightFactory& make_weight, const std::string& path,
                                    std::int64_t out_features, std::int64_t in_features) {
  auto weight = make_weight(path);
  if (!weight) fail("module '", path, "': no weight was built");
  if (weight->out_features() != out_features || weight->in_features() != in_features) {
    fail("module '", path, "': weight has shape [", weight->out_features(), ", ",
         weight->in_features(), "], expected [", out_features, ", ", in_features, "]");
  }
  return weight;
}

std::vector<float> load_vector(const TensorSource& tensors, const std::string& name,
                               std::int64_t size) {
  const TensorView tensor = tensors.tensor(name);
  if (tensor.shape.size() != 1 || tensor.shape[0] != size) {
    fail("tensor '", name, "': expected shape [", size, "]");
  }
  return tensor.to_f32();
}

// A bias the architecture may have: required when `expected`, else must be absent.
std::vector<float> load_bias(const TensorSource& tensors, const std::string& module_path,
                             std::int64_t size, bool expected) {
  const std::string name = module_path + ".bias";
  if (!expected) {
    if (tensors.contains(name)) fail("tensor '", name, "' present but the config has no such bias");
    return {};
  }
  return load_vector(tensors, name, size);
}

class CpuSequence final : public ModelSequence {
 public:
  explicit CpuSequence(const Model& model) : model_(model), cache_(model.make_cache()) {}
  std::int64_t length() const override { return cache_.length(); }
  std::vector<float> forward(std::span<const std::int32_t> ids, LogitsMode mode) override {
    return model_.forward(ids, cache_, mode);
  }

 private:
  const Model& model_;
  KVCache cache_;
};

void add_bias(float* y, std::int64_t rows, const std::vector<float>& bias) {
  if (bias.empty()) return;
  const auto width = static_cast<std::int64_t>(bias.size());
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t i = 0; i < width; ++i) y[r * width + i] += bias[i];
  }
}

void linear(const Weight& weight, const std::vector<float>& bias, const float* x, std::int64_t rows,
            float* y) {
  weight.matmul(x, rows, y);
  add_bias(y, rows, bias);
}

// With tied embeddings the head is the embedding and lm_head is never read. A float
// lm_head.weight beside it is a copy (transformers ignores it too), but quantized head tensors
// (optimum-quanto quantizes the Linear head of a tied model on its own) hold other values:
// running the embedding instead would silently change the model.
void refuse_quantized_tied_head(const TensorSource& tensors) {
  for (const char* name : {"lm_head.scales", "lm_head.weight._scale", "lm_head.weight.absmax",
                           "lm_head.SCB", "lm_head.weight_scale"}) {
    if (tensors.contains(name)) {
      fail("tensor '", name, "': lm_head is stored quantized but tie_word_embeddings is true ",
           "(the head would be the embedding); untie it in config.json or store it float");
    }
  }
}

}  // namespace

Model::Model(ModelConfig config, const TensorSource& tensors, const WeightFactory& make_weight)
    : config_(std::move(config)), rope_(config_) {
  const std::int64_t hidden = config_.hidden_size;
  const std::int64_t q_width = config_.num_attention_heads * config_.head_dim;
  const std::int64_t kv_width = config_.num_key_value_heads * config_.head_dim;
  const std::int64_t inner = config_.intermediate_size;
  embed_tokens_ = load_weight(make_weight, "model.embed_tokens", config_.vocab_size, hidden);
  if (!config_.tie_word_embeddings) {
    lm_head_ = load_weight(make_weight, "lm_head", config_.vocab_size, hidden);
  } else {
    refuse_quantized_tied_head(tensors);
  }
  final_norm_ = load_vector(tensors, "model.norm.weight", hidden);
  layers_.resize(config_.num_hidden_layers);
  for (std::int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    const std::string prefix = "model.layers." + std::to_string(i) + ".";
    DecoderLayer& layer = layers_[i];
    const std::string attn = prefix + "self_attn.";
    const std::string mlp = prefix + "mlp.";
    layer.q_proj = load_weight(make_weight, attn + "q_proj", q_width, hidden);
    layer.k_proj = load_weight(make_weight, attn + "k_proj", kv_width, hidden);
    layer.v_proj = load_weight(make_weight, attn + "v_proj", kv_width, hidden);
    layer.o_proj = load_weight(make_weight, attn + "o_proj", hidden, q_width);
    layer.gate_proj = load_weight(make_weight, mlp + "gate_proj", inner, hidden);
    layer.up_proj = load_weight(make_weight, mlp + "up_proj", inner, hidden);
    layer.down_proj = load_weight(make_weight, mlp + "down_proj", hidden, inner);
    layer.input_norm = load_vector(tensors, prefix + "input_layernorm.weight", hidden);
    layer.post_attention_norm =
        load_vector(tensors, prefix + "post_attention_layernorm.weight", hidden);
    layer.q_bias = load_bias(tensors, attn + "q_proj", q_width, config_.attention_bias);
    layer.k_bias = load_bias(tensors, attn + "k_proj", kv_width, config_.attention_bias);
    layer.v_bias = load_bias(tensors, attn + "v_proj", kv_width, config_.attention_bias);
    layer.o_bias = load_bias(tensors, attn + "o_proj", hidden, config_.o_proj_bias);
    layer.gate_bias = load_bias(tensors, mlp + "gate_proj", inner, config_.mlp_bias);
    layer.up_bias = load_bias(tensors, mlp + "up_proj", inner, config_.mlp_bias);
    layer.down_bias = load_bias(tensors, mlp + "down_proj", hidden, config_.mlp_bias);
  }
}

std::vector<WeightSlot> Model::weight_slots() {
  std::vector<WeightSlot> slots;
  std::vector<std::string> embed_aliases;
  if (config_.tie_word_embeddings) embed_aliases.push_back("lm_head");
  slots.push_back({"model.embed_tokens", embed_tokens_, embed_aliases});
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const std::string prefix = "model.layers." + std::to_string(i) + ".";
    DecoderLayer& layer = layers_[i];
    slots.push_back({prefix + "self_attn.q_proj", layer.q_proj, {}});
    slots.push_back({prefix + "self_attn.k_proj", layer.k_proj, {}});
    slots.push_back({prefix + "self_attn.v_proj", layer.v_proj, {}});
    slots.push_back({prefix + "self_attn.o_proj", layer.o_proj, {}});
    slots.push_back({prefix + "mlp.gate_proj", layer.gate_proj, {}});
    slots.push_back({prefix + "mlp.up_proj", layer.up_proj, {}});
    slots.push_back({prefix + "mlp.down_proj", layer.down_proj, {}});
  }
  if (!config_.tie_word_embeddings) slots.push_back({"lm_head", lm_head_, {}});
  return slots;
}

std::vector<std::pair<std::string, std::shared_ptr<const Weight>>> Model::named_weights() const {
  std::vector<std::pair<std::string, std::shared_ptr<const Weight>>> named;
  // weight_slots() hands out assignable references; reading through them is safe.
  for (const auto& slot : const_cast<Model*>(this)->weight_slots()) {
    named.emplace_back(slot.path, slot.weight);
  }
  return named;
}

std::vector<std::pair<std::string, const std::vector<float>*>> Model::named_vectors() const {
  std::vector<std::pair<std::string, const std::vector<float>*>> named;
  const auto add = [&named](std::string name, const std::vector<float>& values) {
    if (!values.empty()) named.emplace_back(std::move(name), &values);
  };
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const std::string prefix = "model.layers." + std::to_string(i) + ".";
    const DecoderLayer& layer = layers_[i];
    add(prefix + "input_layernorm.weight", layer.input_norm);
    add(prefix + "post_attention_layernorm.weight", layer.post_attention_norm);
    add(prefix + "self_attn.q_proj.bias", layer.q_bias);
    add(prefix + "self_attn.k_proj.bias", layer.k_bias);
    add(prefix + "self_attn.v_proj.bias", layer.v_bias);
    add(prefix + "self_attn.o_proj.bias", layer.o_bias);
    add(prefix + "mlp.gate_proj.bias", layer.gate_bias);
    add(prefix + "mlp.up_proj.bias", layer.up_bias);
    add(prefix + "mlp.down_proj.bias", layer.down_bias);
  }
  add("model.norm.weight", final_norm_);
  return named;
}

KVCache Model::make_cache() const {
  return KVCache(config_.num_hidden_layers, config_.num_key_value_heads, config_.head_dim);
}

std::unique_ptr<ModelSequence> Model::start_sequence() const {
  return std::make_unique<CpuSequence>(*this);
}

std::vector<float> Model::forward(std::span<const std::int32_t> ids, LogitsMode mode) const {
  KVCache cache = make_cache();
  return forward(ids, cache, mode);
}

std::vector<float> Model::forward(std::span<const std::int32_t> ids, KVCache& cache,
                                  LogitsMode mode) const {
  const auto count = static_cast<std::int64_t>(ids.size());
  if (count == 0) fail("forward: no token ids");
  if (cache.length() + count > config_.max_position_embeddings) {
    fail("forward: ", cache.length() + count, " positions exceed max_position_embeddings (",
         config_.max_position_embeddings, ")");
  }
  const std::int64_t hidden = config_.hidden_size;
  std::vector<float> x = embed(ids);
  cache.reserve_more(count);
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const auto index = static_cast<std::int64_t>(i);
    attention_block(layers_[i], index, index, x.data(), count, cache);
    mlp_block(layers_[i], x.data(), count);
  }
  cache.advance(count);

  const std::int64_t first_row = mode == LogitsMode::Last ? count - 1 : 0;
  const std::int64_t rows = count - first_row;
  float* kept = x.data() + first_row * hidden;
  rms_norm(kept, rows, hidden, final_norm_.data(), static_cast<float>(config_.rms_norm_eps), kept);
  std::vector<float> logits(static_cast<std::size_t>(rows * config_.vocab_size));
  lm_head().matmul(kept, rows, logits.data());
  return logits;
}

std::vector<float> Model::embed(std::span<const std::int32_t> ids) const {
  const std::int64_t hidden = config_.hidden_size;
  std::vector<float> x(ids.size() * static_cast<std::size_t>(hidden));
  for (std::size_t t = 0; t < ids.size(); ++t) {
    const std::int32_t id = ids[t];
    if (id < 0 || id >= config_.vocab_size) {
      fail("token id ", id, " outside the vocabulary [0, ", config_.vocab_size, ")");
    }
    embed_tokens_->dequantize_rows(id, 1, x.data() + static_cast<std::int64_t>(t) * hidden);
  }
  return x;
}

void Model::run_block(std::int64_t index, float* x, std::int64_t count) const {
  if (index < 0 || index >= static_cast<std::int64_t>(layers_.size())) {
    fail("run_block: block ", index, " outside [0, ", layers_.size(), ")");
  }
  if (count < 1 || count > config_.max_position_embeddings) {
    fail("run_block: ", count, " positions outside [1, max_position_embeddings]");
  }
  // A cache of one layer: the block's keys and values only.
  KVCache cache(1, config_.num_key_value_heads, config_.head_dim);
  cache.reserve_more(count);
  const DecoderLayer& layer = layers_[static_cast<std::size_t>(index)];
  attention_block(layer, index, 0, x, count, cache);
  mlp_block(layer, x, count);
}

void Model::attention_block(const DecoderLayer& layer, std::int64_t index, std::int64_t cache_layer,
                            float* x, std::int64_t count, KVCache& cache) const {
  const std::int64_t hidden = config_.hidden_size;
  const std::int64_t q_width = config_.num_attention_heads * config_.head_dim;
  const std::int64_t kv_width = config_.num_key_value_heads * config_.head_dim;
  const auto eps = static_cast<float>(config_.rms_norm_eps);

  std::vector<float> normed(static_cast<std::size_t>(count * hidden));
  rms_norm(x, count, hidden, layer.input_norm.data(), eps, normed.data());
  std::vector<float> q(static_cast<std::size_t>(count * q_width));
  std::vector<float> k(static_cast<std::size_t>(count * kv_width));
  std::vector<float> v(static_cast<std::size_t>(count * kv_width));
  linear(*layer.q_proj, layer.q_bias, normed.data(), count, q.data());
  linear(*layer.k_proj, layer.k_bias, normed.data(), count, k.data());
  linear(*layer.v_proj, layer.v_bias, normed.data(), count, v.data());
  const std::int64_t first_position = cache.length();
  rope_.apply(q.data(), count, config_.num_attention_heads, first_position);
  rope_.apply(k.data(), count, config_.num_key_value_heads, first_position);
  cache.store(cache_layer, k.data(), v.data(), count);

  AttentionShape shape;
  shape.heads = config_.num_attention_heads;
  shape.kv_heads = config_.num_key_value_heads;
  shape.head_dim = config_.head_dim;
  if (config_.layer_uses_sliding_window[index]) shape.sliding_window = config_.sliding_window;
  std::vector<float> attended(static_cast<std::size_t>(count * q_width));
  causal_attention(q.data(), count, first_position, cache, cache_layer, shape, attended.data());

  std::vector<float> projected(static_cast<std::size_t>(count * hidden));
  linear(*layer.o_proj, layer.o_bias, attended.data(), count, projected.data());
  for (std::size_t i = 0; i < projected.size(); ++i) x[i] += projected[i];
}

void Model::mlp_block(const DecoderLayer& layer, float* x, std::int64_t count) const {
  const std::int64_t hidden = config_.hidden_size;
  const std::int64_t inner = config_.intermediate_size;
  std::vector<float> normed(static_cast<std::size_t>(count * hidden));
  rms_norm(x, count, hidden, layer.post_attention_norm.data(),
           static_cast<float>(config_.rms_norm_eps), normed.data());
  std::vector<float> gate(static_cast<std::size_t>(count * inner));
  std::vector<float> up(static_cast<std::size_t>(count * inner));
  linear(*layer.gate_proj, layer.gate_bias, normed.data(), count, gate.data());
  linear(*layer.up_proj, layer.up_bias, normed.data(), count, up.data());
  for (std::size_t i = 0; i < gate.size(); ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];  // silu(gate) * up
  }
  std::vector<float> down(static_cast<std::size_t>(count * hidden));
  linear(*layer.down_proj, layer.down_bias, gate.data(), count, down.data());
  for (std::size_t i = 0; i < down.size(); ++i) x[i] += down[i];
}

std::shared_ptr<Model> load_model(const std::filesystem::path& dir) {
  if (is_gguf_file(dir)) return load_gguf_model(dir);
  if (!std::filesystem::is_directory(dir)) fail(dir.string(), ": model directory not found");
  const auto config_path = dir / "config.json";
  if (!std::filesystem::exists(config_path)) fail(config_path.string(), ": file not found");
  const auto tokenizer_path = dir / "tokenizer.json";
  if (!std::filesystem::exists(tokenizer_path)) fail(tokenizer_path.string(), ": file not found");
  ModelConfig config = load_model_config(config_path);
  const Checkpoint checkpoint = Checkpoint::open(dir);
  const TensorSource tensors = checkpoint_tensors(checkpoint);
  const WeightFactory weights = weight_factory_for(config, tensors, config_path.string());
  auto model = std::make_shared<Model>(std::move(config), tensors, weights);
  model->set_tokenizer(std::make_shared<const Tokenizer>(Tokenizer::from_file(tokenizer_path)));
  model->set_source_directory(dir);
  return model;
}

}  // namespace uq
