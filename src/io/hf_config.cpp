#include "io/hf_config.hpp"

#include <array>
#include <fstream>
#include <string_view>

#include "core/error.hpp"

namespace uq {
namespace {

using nlohmann::json;

// Far above any real model (Llama 3.1 405B has 126 layers).
constexpr std::int64_t kMaxLayers = 65536;
constexpr std::array<std::string_view, 3> kSupportedTypes{"llama", "mistral", "qwen2"};

// Reads fields of one JSON object, naming the file and the field in errors.
class FieldReader {
 public:
  FieldReader(const json& object, std::string origin)
      : object_(object), origin_(std::move(origin)) {}

  bool has(const char* key) const { return object_.contains(key) && !object_[key].is_null(); }

  const json& required(const char* key) const {
    if (!has(key)) fail(origin_, ": missing required field '", key, "'");
    return object_[key];
  }

  std::int64_t integer(const char* key) const { return as_integer(key, required(key)); }
  std::int64_t integer(const char* key, std::int64_t fallback) const {
    return has(key) ? as_integer(key, object_[key]) : fallback;
  }
  std::int64_t positive(const char* key) const {
    const auto value = integer(key);
    if (value <= 0) fail(origin_, ": field '", key, "' must be positive, got ", value);
    return value;
  }
  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    if (!object_[key].is_number()) fail(origin_, ": field '", key, "' must be a number");
    return object_[key].get<double>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!object_[key].is_boolean()) fail(origin_, ": field '", key, "' must be true or false");
    return object_[key].get<bool>();
  }
  std::string string(const char* key, std::string fallback) const {
    if (!has(key)) return fallback;
    if (!object_[key].is_string()) fail(origin_, ": field '", key, "' must be a string");
    return object_[key].get<std::string>();
  }
  // An id field that may be one integer or a list of integers.
  std::vector<std::int32_t> ids(const char* key) const {
    std::vector<std::int32_t> result;
    if (!has(key)) return result;
    const json& value = object_[key];
    if (value.is_array()) {
      for (const auto& item : value)
        result.push_back(static_cast<std::int32_t>(as_integer(key, item)));
    } else {
      result.push_back(static_cast<std::int32_t>(as_integer(key, value)));
    }
    return result;
  }

  const std::string& origin() const { return origin_; }

 private:
  std::int64_t as_integer(const char* key, const json& value) const {
    if (!value.is_number_integer()) fail(origin_, ": field '", key, "' must be an integer");
    return value.get<std::int64_t>();
  }

  const json& object_;
  std::string origin_;
};

RopeScaling parse_rope_scaling(const json& parameters, const std::string& origin) {
  if (!parameters.is_object()) fail(origin, ": rope parameters must be an object");
  const FieldReader fields(parameters, origin);
  // Older configs spell the kind "type".
  const std::string kind = fields.has("rope_type") ? fields.string("rope_type", "default")
                                                   : fields.string("type", "default");
  if (fields.number("partial_rotary_factor", 1.0) != 1.0) {
    fail(origin, ": rope 'partial_rotary_factor' other than 1 is not supported");
  }
  RopeScaling scaling;
  if (kind == "default") return scaling;
  if (kind == "linear") {
    scaling.kind = RopeScaling::Kind::Linear;
    scaling.factor = fields.number("factor", 0.0);
    if (!(scaling.factor > 0.0)) fail(origin, ": rope type 'linear' needs a positive 'factor'");
    return scaling;
  }
  if (kind == "llama3") {
    scaling.kind = RopeScaling::Kind::Llama3;
    scaling.factor = fields.number("factor", 0.0);
    scaling.low_freq_factor = fields.number("low_freq_factor", 0.0);
    scaling.high_freq_factor = fields.number("high_freq_factor", 0.0);
    scaling.original_max_position_embeddings = fields.integer("original_max_position_embeddings");
    if (!(scaling.factor > 0.0) || !(scaling.low_freq_factor > 0.0) ||
        !(scaling.high_freq_factor > scaling.low_freq_factor) ||
        scaling.original_max_position_embeddings <= 0) {
      fail(origin,
           ": rope type 'llama3' needs factor > 0, 0 < low_freq_factor < high_freq_factor "
           "and original_max_position_embeddings > 0");
    }
    return scaling;
  }
  fail(origin, ": unsupported rope type '", kind, "' (supported: default, linear, llama3)");
}

DType parse_torch_dtype(const std::string& name, const std::string& origin) {
  if (name == "float32") return DType::F32;
  if (name == "float16") return DType::F16;
  if (name == "bfloat16") return DType::BF16;
  fail(origin, ": unsupported torch dtype '", name, "' (supported: float32, float16, bfloat16)");
}

}  // namespace

ModelConfig parse_model_config(const json& raw, const std::string& origin) {
  if (!raw.is_object()) fail(origin, ": expected a JSON object");
  const FieldReader fields(raw, origin);
  ModelConfig config;
  config.raw = raw;
  config.model_type = fields.required("model_type").is_string()
                          ? fields.required("model_type").get<std::string>()
                          : std::string();
  bool supported = false;
  for (auto type : kSupportedTypes) supported = supported || config.model_type == type;
  if (!supported) {
    fail(origin, ": unsupported model_type '", config.model_type,
         "' (supported: llama, mistral, qwen2)");
  }
  const bool is_mistral = config.model_type == "mistral";
  const bool is_qwen2 = config.model_type == "qwen2";

  config.hidden_size = fields.positive("hidden_size");
  config.num_hidden_layers = fields.positive("num_hidden_layers");
  // Per-layer tables are sized from it before any weight is seen.
  if (config.num_hidden_layers > kMaxLayers) {
    fail(origin, ": field 'num_hidden_layers' is ", config.num_hidden_layers,
         ", more than the limit of ", kMaxLayers);
  }
  config.num_attention_heads = fields.positive("num_attention_heads");
  config.num_key_value_heads = fields.integer("num_key_value_heads", config.num_attention_heads);
  config.head_dim = fields.integer("head_dim", config.hidden_size / config.num_attention_heads);
  config.intermediate_size = fields.positive("intermediate_size");
  config.vocab_size = fields.positive("vocab_size");
  const std::int64_t default_max_positions = is_qwen2 ? 32768 : is_mistral ? 131072 : 2048;
  config.max_position_embeddings = fields.integer("max_position_embeddings", default_max_positions);
  config.rms_norm_eps = fields.number("rms_norm_eps", 1e-6);
  if (!(config.rms_norm_eps > 0.0)) {
    fail(origin, ": field 'rms_norm_eps' must be positive, got ", config.rms_norm_eps);
  }
  if (config.num_key_value_heads <= 0 ||
      config.num_attention_heads % config.num_key_value_heads != 0) {
    fail(origin, ": field 'num_key_value_heads' (", config.num_key_value_heads,
         ") must divide num_attention_heads (", config.num_attention_heads, ")");
  }
  if (config.head_dim <= 0 || config.head_dim % 2 != 0) {
    fail(origin, ": field 'head_dim' must be a positive even number, got ", config.head_dim);
  }
  if (config.max_position_embeddings <= 0) {
    fail(origin, ": field 'max_position_embeddings' must be positive");
  }

  const std::string activation = fields.string("hidden_act", "silu");
  if (activation != "silu") {
    fail(origin, ": field 'hidden_act' is '", activation, "'; only 'silu' is supported");
  }

  // Newer configs keep theta and scaling in "rope_parameters", older ones use
  // a top-level "rope_theta" and an optional "rope_scaling" dict.
  config.rope_theta = fields.number("rope_theta", 10000.0);
  if (fields.has("rope_parameters")) {
    const json& parameters = raw["rope_parameters"];
    config.rope_scaling = parse_rope_scaling(parameters, origin);
    config.rope_theta = FieldReader(parameters, origin).number("rope_theta", config.rope_theta);
  } else if (fields.has("rope_scaling")) {
    config.rope_scaling = parse_rope_scaling(raw["rope_scaling"], origin);
  }
  if (!(config.rope_theta > 0.0)) fail(origin, ": field 'rope_theta' must be positive");

  if (is_qwen2) {
    config.attention_bias = true;  // q/k/v always carry biases, o_proj never
  } else if (!is_mistral) {
    config.attention_bias = fields.boolean("attention_bias", false);
    config.o_proj_bias = config.attention_bias;
    config.mlp_bias = fields.boolean("mlp_bias", false);
  }
  config.tie_word_embeddings = fields.boolean("tie_word_embeddings", false);
  config.bos_token_ids = fields.ids("bos_token_id");
  config.eos_token_ids = fields.ids("eos_token_id");

  config.layer_uses_sliding_window.assign(config.num_hidden_layers, false);
  if (is_mistral) {
    // A missing key means the family default; an explicit null means none.
    const std::int64_t window = raw.contains("sliding_window") && raw["sliding_window"].is_null()
                                    ? 0
                                    : fields.integer("sliding_window", 4096);
    if (window > 0) {
      config.sliding_window = window;
      config.layer_uses_sliding_window.assign(config.num_hidden_layers, true);
    }
  } else if (is_qwen2 && fields.boolean("use_sliding_window", false) &&
             fields.has("sliding_window")) {
    config.sliding_window = fields.integer("sliding_window");
    const std::int64_t first_sliding = fields.integer("max_window_layers", 28);
    for (std::int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
      config.layer_uses_sliding_window[layer] = layer >= first_sliding;
    }
    if (fields.has("layer_types")) {
      const json& types = raw["layer_types"];
      if (!types.is_array() ||
          static_cast<std::int64_t>(types.size()) != config.num_hidden_layers) {
        fail(origin, ": field 'layer_types' must list one type per layer");
      }
      for (std::int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
        config.layer_uses_sliding_window[layer] = types[layer] == "sliding_attention";
      }
    }
  }
  if (config.sliding_window && *config.sliding_window <= 0) {
    fail(origin, ": field 'sliding_window' must be positive");
  }

  if (fields.has("torch_dtype")) {
    config.dtype = parse_torch_dtype(fields.string("torch_dtype", ""), origin);
  } else if (fields.has("dtype")) {
    config.dtype = parse_torch_dtype(fields.string("dtype", ""), origin);
  }
  return config;
}

ModelConfig load_model_config(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) fail(path.string(), ": cannot open config file");
  json raw;
  try {
    raw = json::parse(in);
  } catch (const json::exception& error) {
    fail(path.string(), ": invalid JSON: ", error.what());
  }
  return parse_model_config(raw, path.string());
}

}  // namespace uq
