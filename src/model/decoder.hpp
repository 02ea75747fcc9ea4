#pragma once
// The decoder-only transformer of the llama / mistral / qwen2 families:
// embeddings, N blocks of (RMSNorm, grouped-query attention with RoPE, RMSNorm,
// SwiGLU MLP) with residuals, a final RMSNorm and the language-model head.
// Activations are float32; weights are whatever `Weight` implementation the
// loader (or later a quantizer) put in each slot.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/hf_config.hpp"
#include "model/causal_lm.hpp"
#include "model/generate.hpp"
#include "model/kv_cache.hpp"
#include "model/rope.hpp"
#include "model/tensor_source.hpp"
#include "model/weight.hpp"

namespace uq {

class Tokenizer;
struct NamedLoraAdapter;

// A replaceable weight, named by its HF module path. Assigning to `weight`
// swaps the matrix the model uses (e.g. for a quantized one).
struct WeightSlot {
  std::string path;
  std::shared_ptr<Weight>& weight;
  // Other module paths served by the same matrix: "lm_head" for tied
  // embeddings, which have one slot only so that they stay tied.
  std::vector<std::string> tied_paths;
};

struct DecoderLayer {
  std::shared_ptr<Weight> q_proj, k_proj, v_proj, o_proj;
  std::shared_ptr<Weight> gate_proj, up_proj, down_proj;
  std::vector<float> input_norm, post_attention_norm;
  // Empty when the architecture has no such bias.
  std::vector<float> q_bias, k_bias, v_bias, o_bias;
  std::vector<float> gate_bias, up_bias, down_bias;
};

class Model final : public CausalLM {
 public:
  // Reads every parameter from `tensors`; the linear/embedding matrices come
  // from `make_weight`. Throws uq::Error naming a missing or misshapen tensor.
  Model(ModelConfig config, const TensorSource& tensors, const WeightFactory& make_weight);

  const ModelConfig& config() const override { return config_; }
  // Null unless the model was loaded with its tokenizer.
  const std::shared_ptr<const Tokenizer>& tokenizer() const { return tokenizer_; }
  void set_tokenizer(std::shared_ptr<const Tokenizer> tokenizer) {
    tokenizer_ = std::move(tokenizer);
  }

  // Embedding, every linear layer of every block, and lm_head (unless tied),
  // in model order.
  std::vector<WeightSlot> weight_slots();
  // The same matrices, read-only: (module path, weight) in model order.
  std::vector<std::pair<std::string, std::shared_ptr<const Weight>>> named_weights() const;
  // Every float vector parameter under its HF tensor name: norm weights and
  // the biases the architecture has ("model.layers.0.self_attn.q_proj.bias").
  std::vector<std::pair<std::string, const std::vector<float>*>> named_vectors() const;
  // The LoRA adapters attached to its linears (src/train/lora_attach.hpp),
  // shared: a training loop updates them in place.
  std::vector<NamedLoraAdapter> lora_parameters() const;
  // The directory the model was loaded from (tokenizer files live there);
  // empty for a model built in memory.
  const std::filesystem::path& source_directory() const { return source_directory_; }
  void set_source_directory(std::filesystem::path dir) { source_directory_ = std::move(dir); }
  const Weight& embed_tokens() const { return *embed_tokens_; }
  const Weight& lm_head() const { return config_.tie_word_embeddings ? *embed_tokens_ : *lm_head_; }
  const std::vector<DecoderLayer>& layers() const { return layers_; }
  // Block `index` for in-place changes that keep the model's function (a
  // calibration folding scales into a norm weight, swapping a linear).
  DecoderLayer& layer(std::int64_t index) { return layers_.at(static_cast<std::size_t>(index)); }

  // The hidden states entering block 0: embedding rows of `ids`, [n, hidden].
  std::vector<float> embed(std::span<const std::int32_t> ids) const;
  // Runs decoder block `index` (attention and MLP with their residuals) on
  // `count` positions 0.. of one sequence, in place on x [count, hidden].
  // Calibration walks the model block by block with this.
  void run_block(std::int64_t index, float* x, std::int64_t count) const;

  KVCache make_cache() const;
  // Runs `ids` (positions cache.length() onwards) through the model, appending
  // their keys/values to `cache`. Returns logits [n, vocab] row-major for All,
  // [1, vocab] of the last token for Last.
  std::vector<float> forward(std::span<const std::int32_t> ids, KVCache& cache,
                             LogitsMode mode = LogitsMode::All) const;
  // Logits of `ids` from an empty cache.
  std::vector<float> forward(std::span<const std::int32_t> ids,
                             LogitsMode mode = LogitsMode::All) const override;
  // A sequence over a CPU KVCache (perplexity and generate run through it).
  std::unique_ptr<ModelSequence> start_sequence() const override;

  GenerationResult generate(std::span<const std::int32_t> prompt,
                            const GenerationOptions& options) const {
    return uq::generate(*this, prompt, options);
  }

 private:
  // `index` picks the block's attention settings, `cache_layer` its layer in `cache`.
  void attention_block(const DecoderLayer& layer, std::int64_t index, std::int64_t cache_layer,
                       float* x, std::int64_t count, KVCache& cache) const;
  void mlp_block(const DecoderLayer& layer, float* x, std::int64_t count) const;

  ModelConfig config_;
  Rope rope_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::shared_ptr<Weight> embed_tokens_;
  std::shared_ptr<Weight> lm_head_;  // null when tied to embed_tokens_
  std::vector<DecoderLayer> layers_;
  std::vector<float> final_norm_;
  std::filesystem::path source_directory_;
};

// Loads a Hugging Face model directory: config.json, the safetensors
// checkpoint (single or sharded) and tokenizer.json. Weights keep their stored
// float dtype. A path to a .gguf file (by its magic) loads that instead (see
// io/formats/gguf_model.hpp). Throws uq::Error naming the missing/invalid file.
std::shared_ptr<Model> load_model(const std::filesystem::path& dir);

}  // namespace uq
