// libFuzzer target: a quantized model as a stranger would ship it. The input
// is [4-byte little-endian length N][N bytes of JSON merged into config.json]
// [the model.safetensors bytes]: the JSON carries the layout's quantization
// section (mlx "quantization", bnb/custom "quantization_config"; quanto is
// recognised from its tensor names), so bits, group sizes, packed shapes and
// scales are all mutated together. Loading through the layout readers must
// either give a model that runs, or throw uq::Error; nothing else.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.hpp"
#include "fuzz_input_file.hpp"
#include "io/formats/layout_detection.hpp"
#include "io/hf_config.hpp"
#include "io/safetensors.hpp"
#include "model/decoder.hpp"

namespace {

// One llama block of width 64: small enough for ~1,000 loads a second.
const nlohmann::json& base_config() {
  static const nlohmann::json config = {
      {"model_type", "llama"},   {"hidden_size", 64},        {"intermediate_size", 128},
      {"num_hidden_layers", 1},  {"num_attention_heads", 2}, {"num_key_value_heads", 1},
      {"head_dim", 32},          {"vocab_size", 64},         {"max_position_embeddings", 64},
      {"rms_norm_eps", 1e-5},    {"rope_theta", 10000.0},    {"tie_word_embeddings", false},
      {"torch_dtype", "float32"}};
  return config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  std::uint32_t json_size = 0;
  std::memcpy(&json_size, data, 4);
  if (json_size > size - 4) return 0;
  const auto overrides = nlohmann::json::parse(data + 4, data + 4 + json_size, nullptr, false);
  if (!overrides.is_object()) return 0;  // the harness's framing, not the library's input
  nlohmann::json raw = base_config();
  raw.update(overrides);

  const auto& directory = uq::fuzz::scratch_directory();
  uq::fuzz::write_bytes(directory / "model.safetensors", data + 4 + json_size,
                        size - 4 - json_size);
  try {
    const uq::ModelConfig config = uq::parse_model_config(raw, "fuzz config");
    const uq::Checkpoint checkpoint = uq::Checkpoint::open(directory);
    const uq::TensorSource tensors = uq::checkpoint_tensors(checkpoint);
    const uq::Model model(config, tensors, uq::weight_factory_for(config, tensors, "fuzz"));
    const std::vector<std::int32_t> ids{1, 2, 3};
    const auto logits = model.forward(ids, uq::LogitsMode::Last);
    if (logits.size() != static_cast<std::size_t>(config.vocab_size)) __builtin_trap();
  } catch (const uq::Error&) {
  }
  return 0;
}
