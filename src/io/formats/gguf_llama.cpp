#include "io/formats/gguf_llama.hpp"

#include <array>
#include <regex>
#include <string_view>
#include <utility>

#include "core/error.hpp"
#include "io/formats/gguf_reader.hpp"
#include "io/formats/gguf_writer.hpp"
#include "io/tokenizer/tokenizer.hpp"

namespace uq {
namespace {

using nlohmann::json;

constexpr std::array<std::pair<std::string_view, std::string_view>, 3> kTopLevel{{
    {"model.embed_tokens", "token_embd"},
    {"model.norm", "output_norm"},
    {"lm_head", "output"},
}};

constexpr std::array<std::pair<std::string_view, std::string_view>, 9> kPerLayer{{
    {"input_layernorm", "attn_norm"},
    {"self_attn.q_proj", "attn_q"},
    {"self_attn.k_proj", "attn_k"},
    {"self_attn.v_proj", "attn_v"},
    {"self_attn.o_proj", "attn_output"},
    {"post_attention_layernorm", "ffn_norm"},
    {"mlp.gate_proj", "ffn_gate"},
    {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},
}};

// llama.cpp's token types (llama_token_type).
constexpr std::int32_t kTokenNormal = 1;
constexpr std::int32_t kTokenControl = 3;
constexpr std::int32_t kTokenUserDefined = 4;
constexpr std::int32_t kTokenUnused = 5;

// Llama 3's pre-tokenizer split pattern (tokenizer.json of Meta-Llama-3).
constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::optional<std::string> map_module(const std::string& name, bool to_gguf) {
  for (const auto& [hf, gguf] : kTopLevel) {
    if (name == (to_gguf ? hf : gguf)) return std::string(to_gguf ? gguf : hf);
  }
  static const std::regex hf_layer(R"(model\.layers\.(\d+)\.(.+))");
  static const std::regex gguf_layer(R"(blk\.(\d+)\.(.+))");
  std::smatch match;
  if (!std::regex_match(name, match, to_gguf ? hf_layer : gguf_layer)) return std::nullopt;
  for (const auto& [hf, gguf] : kPerLayer) {
    if (match[2].str() == (to_gguf ? hf : gguf)) {
      return (to_gguf ? "blk." : "model.layers.") + match[1].str() + "." +
             std::string(to_gguf ? gguf : hf);
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> gguf_module_name(const std::string& hf_module) {
  return map_module(hf_module, true);
}

std::optional<std::string> hf_module_name(const std::string& gguf_module) {
  return map_module(gguf_module, false);
}

std::vector<std::int64_t> gguf_qk_row_order(std::int64_t heads, std::int64_t head_dim) {
  std::vector<std::int64_t> order;
  order.reserve(static_cast<std::size_t>(heads * head_dim));
  const std::int64_t half = head_dim / 2;
  for (std::int64_t h = 0; h < heads; ++h) {
    for (std::int64_t i = 0; i < half; ++i) {
      order.push_back(h * head_dim + i);         // GGUF row h*hd + 2i
      order.push_back(h * head_dim + half + i);  // GGUF row h*hd + 2i + 1
    }
  }
  return order;
}

void add_llama_metadata(GgufWriter& writer, const ModelConfig& config) {
  if (config.attention_bias || config.o_proj_bias || config.mlp_bias) {
    fail("GGUF export: projection biases are not supported by the llama architecture here");
  }
  if (config.sliding_window) fail("GGUF export: sliding-window attention is not supported");
  if (config.rope_scaling.kind == RopeScaling::Kind::Llama3) {
    fail("GGUF export: llama3 rope scaling (rope_freqs) is not supported");
  }
  const auto u32 = [](std::int64_t value) { return static_cast<std::uint32_t>(value); };
  writer.add_string("general.architecture", "llama");
  writer.add_u32("llama.context_length", u32(config.max_position_embeddings));
  writer.add_u32("llama.embedding_length", u32(config.hidden_size));
  writer.add_u32("llama.block_count", u32(config.num_hidden_layers));
  writer.add_u32("llama.feed_forward_length", u32(config.intermediate_size));
  writer.add_u32("llama.attention.head_count", u32(config.num_attention_heads));
  writer.add_u32("llama.attention.head_count_kv", u32(config.num_key_value_heads));
  writer.add_f32("llama.attention.layer_norm_rms_epsilon", static_cast<float>(config.rms_norm_eps));
  writer.add_f32("llama.rope.freq_base", static_cast<float>(config.rope_theta));
  writer.add_u32("llama.rope.dimension_count", u32(config.head_dim));
  writer.add_u32("llama.attention.key_length", u32(config.head_dim));
  writer.add_u32("llama.attention.value_length", u32(config.head_dim));
  writer.add_u32("llama.vocab_size", u32(config.vocab_size));
  if (config.rope_scaling.kind == RopeScaling::Kind::Linear) {
    writer.add_string("llama.rope.scaling.type", "linear");
    writer.add_f32("llama.rope.scaling.factor", static_cast<float>(config.rope_scaling.factor));
  }
}

void add_tokenizer_metadata(GgufWriter& writer, const Tokenizer& tokenizer, const std::string& pre,
                            std::int64_t vocab_size, const ModelConfig& config) {
  if (tokenizer.vocab_size() > vocab_size) {
    fail("GGUF export: the tokenizer has ", tokenizer.vocab_size(),
         " tokens, more than the model's vocab_size ", vocab_size);
  }
  std::vector<std::string> tokens = tokenizer.tokens();
  tokens.resize(static_cast<std::size_t>(vocab_size));
  std::vector<std::int32_t> types(tokens.size(), kTokenNormal);
  for (std::size_t id = 0; id < tokens.size(); ++id) {
    const auto token_id = static_cast<std::int32_t>(id);
    if (tokens[id].empty()) {
      tokens[id] = "[PAD" + std::to_string(id) + "]";  // as llama.cpp's converter names gaps
      types[id] = kTokenUnused;
    } else if (tokenizer.is_added(token_id)) {
      types[id] = tokenizer.is_special(token_id) ? kTokenControl : kTokenUserDefined;
    }
  }
  std::vector<std::string> merges;
  merges.reserve(tokenizer.merges().size());
  for (const auto& [left, right] : tokenizer.merges()) merges.push_back(left + " " + right);
  writer.add_string("tokenizer.ggml.model", "gpt2");
  writer.add_string("tokenizer.ggml.pre", pre);
  writer.add_strings("tokenizer.ggml.tokens", tokens);
  writer.add_i32s("tokenizer.ggml.token_type", types);
  writer.add_strings("tokenizer.ggml.merges", merges);
  if (!config.bos_token_ids.empty()) {
    writer.add_u32("tokenizer.ggml.bos_token_id",
                   static_cast<std::uint32_t>(config.bos_token_ids[0]));
  }
  if (!config.eos_token_ids.empty()) {
    writer.add_u32("tokenizer.ggml.eos_token_id",
                   static_cast<std::uint32_t>(config.eos_token_ids[0]));
  }
  // Our encoder never adds BOS/EOS; llama.cpp should not either.
  writer.add_bool("tokenizer.ggml.add_bos_token", false);
  writer.add_bool("tokenizer.ggml.add_eos_token", false);
}

std::optional<std::string> gguf_pre_tokenizer_name(const json& tokenizer_json) {
  if (!tokenizer_json.is_object() || !tokenizer_json.contains("pre_tokenizer")) return std::nullopt;
  const json& pre = tokenizer_json["pre_tokenizer"];
  if (!pre.is_object()) return std::nullopt;
  if (pre.value("type", "") == "ByteLevel" && pre.value("use_regex", true)) return "gpt-2";
  if (pre.value("type", "") == "Sequence" && pre.contains("pretokenizers") &&
      pre["pretokenizers"].is_array() && pre["pretokenizers"].size() == 2) {
    const json& split = pre["pretokenizers"][0];
    if (split.is_object() && split.value("type", "") == "Split" && split.contains("pattern") &&
        split["pattern"].is_object() &&
        split["pattern"].value("Regex", "") == std::string(kLlama3Pattern)) {
      return "llama-bpe";
    }
  }
  return std::nullopt;
}

json hf_config_from_gguf(const GgufFile& file) {
  const std::string architecture = file.string("general.architecture");
  if (architecture != "llama") {
    fail(file.origin(), ": general.architecture '", architecture,
         "' is not supported (only llama)");
  }
  const std::int64_t hidden = file.integer("llama.embedding_length");
  const std::int64_t heads = file.integer("llama.attention.head_count");
  if (heads <= 0) fail(file.origin(), ": metadata 'llama.attention.head_count' must be positive");
  const std::int64_t head_dim = file.has("llama.attention.key_length")
                                    ? file.integer("llama.attention.key_length")
                                    : hidden / heads;
  if (file.has("llama.rope.dimension_count") &&
      file.integer("llama.rope.dimension_count") != head_dim) {
    fail(file.origin(), ": metadata 'llama.rope.dimension_count' ",
         file.integer("llama.rope.dimension_count"), " differs from the head size ", head_dim,
         " (partial rotary embeddings are not supported)");
  }
  if (file.find_tensor("rope_freqs.weight") != nullptr) {
    fail(file.origin(), ": tensor 'rope_freqs.weight' (llama3 rope scaling) is not supported");
  }
  const GgufTensorInfo& embedding = file.tensor("token_embd.weight");
  if (embedding.dims.size() != 2) {
    fail(file.origin(), ": tensor 'token_embd.weight' must have 2 dimensions");
  }
  json config = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", hidden},
      {"num_hidden_layers", file.integer("llama.block_count")},
      {"num_attention_heads", heads},
      {"num_key_value_heads", file.has("llama.attention.head_count_kv")
                                  ? file.integer("llama.attention.head_count_kv")
                                  : heads},
      {"head_dim", head_dim},
      {"intermediate_size", file.integer("llama.feed_forward_length")},
      {"vocab_size", embedding.dims[1]},
      {"max_position_embeddings", file.integer("llama.context_length")},
      {"rms_norm_eps", file.number("llama.attention.layer_norm_rms_epsilon")},
      {"rope_theta",
       file.has("llama.rope.freq_base") ? file.number("llama.rope.freq_base") : 10000.0},
      {"tie_word_embeddings", file.find_tensor("output.weight") == nullptr},
      {"torch_dtype", "float32"},
  };
  if (file.has("llama.rope.scaling.type")) {
    const std::string& type = file.string("llama.rope.scaling.type");
    if (type == "linear") {
      config["rope_scaling"] = {{"rope_type", "linear"},
                                {"factor", file.number("llama.rope.scaling.factor")}};
    } else if (type != "none") {
      fail(file.origin(), ": metadata 'llama.rope.scaling.type' '", type, "' is not supported");
    }
  }
  if (file.has("tokenizer.ggml.bos_token_id")) {
    config["bos_token_id"] = file.integer("tokenizer.ggml.bos_token_id");
  }
  if (file.has("tokenizer.ggml.eos_token_id")) {
    config["eos_token_id"] = file.integer("tokenizer.ggml.eos_token_id");
  }
  return config;
}

std::string tokenizer_json_from_gguf(const GgufFile& file) {
  const std::string& model = file.string("tokenizer.ggml.model");
  if (model != "gpt2") {
    fail(file.origin(), ": metadata 'tokenizer.ggml.model' '", model,
         "' is not supported (only byte-level BPE, \"gpt2\")");
  }
  // Without tokenizer.ggml.pre llama.cpp applies its own "default" split,
  // which no tokenizer.json describes: refuse rather than tokenize differently.
  const std::string& pre = file.string("tokenizer.ggml.pre");
  json pre_tokenizer;
  bool ignore_merges = false;
  if (pre == "gpt-2") {
    pre_tokenizer = {{"type", "ByteLevel"},
                     {"add_prefix_space", false},
                     {"trim_offsets", true},
                     {"use_regex", true}};
  } else if (pre == "llama-bpe" || pre == "llama3") {
    pre_tokenizer = {{"type", "Sequence"},
                     {"pretokenizers",
                      {{{"type", "Split"},
                        {"pattern", {{"Regex", std::string(kLlama3Pattern)}}},
                        {"behavior", "Isolated"},
                        {"invert", false}},
                       {{"type", "ByteLevel"},
                        {"add_prefix_space", false},
                        {"trim_offsets", true},
                        {"use_regex", false}}}}};
    ignore_merges = true;
  } else {
    fail(file.origin(), ": metadata 'tokenizer.ggml.pre' '", pre,
         "' is not supported (gpt-2 and llama-bpe are)");
  }
  const std::vector<std::string> tokens = file.string_array("tokenizer.ggml.tokens");
  std::vector<std::int64_t> types(tokens.size(), kTokenNormal);
  if (file.has("tokenizer.ggml.token_type")) {
    types = file.integer_array("tokenizer.ggml.token_type");
    if (types.size() != tokens.size()) {
      fail(file.origin(), ": metadata 'tokenizer.ggml.token_type' has ", types.size(),
           " entries for ", tokens.size(), " tokens");
    }
  }
  json vocab = json::object();
  json added = json::array();
  for (std::size_t id = 0; id < tokens.size(); ++id) {
    if (types[id] == kTokenUnused) continue;
    vocab[tokens[id]] = id;
    if (types[id] == kTokenControl || types[id] == kTokenUserDefined) {
      added.push_back({{"id", id},
                       {"content", tokens[id]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", types[id] == kTokenUserDefined},
                       {"special", types[id] == kTokenControl}});
    }
  }
  json merges = json::array();
  if (file.has("tokenizer.ggml.merges")) {
    for (const auto& merge : file.string_array("tokenizer.ggml.merges")) {
      const auto space = merge.find(' ');
      if (space == std::string::npos) {
        fail(file.origin(), ": metadata 'tokenizer.ggml.merges': entry '", merge,
             "' is not two tokens separated by a space");
      }
      merges.push_back({merge.substr(0, space), merge.substr(space + 1)});
    }
  }
  const json tokenizer = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", pre_tokenizer},
      {"post_processor", nullptr},
      {"decoder",
       {{"type", "ByteLevel"},
        {"add_prefix_space", true},
        {"trim_offsets", true},
        {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", ignore_merges},
        {"vocab", vocab},
        {"merges", merges}}},
  };
  try {
    return tokenizer.dump();
  } catch (const json::exception&) {
    // Byte-level BPE tokens are printable UTF-8; raw bytes mean a damaged file.
    fail(file.origin(),
         ": metadata 'tokenizer.ggml.tokens' or 'tokenizer.ggml.merges' holds text "
         "that is not valid UTF-8");
  }
}

}  // namespace uq
