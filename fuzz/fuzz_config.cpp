// libFuzzer target: arbitrary bytes as a model's config.json. Loading must
// succeed with a self-consistent configuration or throw uq::Error.
#include <cstdint>

#include "core/error.hpp"
#include "fuzz_input_file.hpp"
#include "io/hf_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = uq::fuzz::scratch_directory() / "config.json";
  uq::fuzz::write_bytes(path, data, size);
  try {
    const uq::ModelConfig config = uq::load_model_config(path);
    // What the decoder relies on once loading succeeded.
    if (config.hidden_size <= 0 || config.num_hidden_layers <= 0 || config.vocab_size <= 0 ||
        config.head_dim <= 0 || config.num_key_value_heads <= 0 ||
        config.num_attention_heads % config.num_key_value_heads != 0 ||
        static_cast<std::int64_t>(config.layer_uses_sliding_window.size()) !=
            config.num_hidden_layers) {
      __builtin_trap();
    }
  } catch (const uq::Error&) {
  }
  return 0;
}
