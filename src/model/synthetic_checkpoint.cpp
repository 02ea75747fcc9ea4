#include "model/synthetic_checkpoint.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/interrupt.hpp"
#include "core/thread_pool.hpp"
#include "io/atomic_file.hpp"
#include "io/hf_config.hpp"
#include "io/safetensors.hpp"
#include "io/staged_directory.hpp"
#include "model/parameter_names.hpp"

namespace uq {
namespace fs = std::filesystem;
namespace {

constexpr const char* kTokenizerFiles[] = {"tokenizer.json", "tokenizer_config.json",
                                           "special_tokens_map.json"};
// Elements drawn from one seed: the unit of parallel work, and what makes the
// bytes independent of the thread count.
constexpr std::int64_t kBlockElements = 1 << 20;
// Elements generated per write to the file (bounds memory).
constexpr std::int64_t kBatchElements = 32 * kBlockElements;

struct Preset {
  const char* name;
  std::int64_t hidden, intermediate, layers, heads, kv_heads, vocab, max_positions;
  double rope_theta;
};

constexpr Preset kPresets[] = {
    {"llama3-8b", 4096, 14336, 32, 32, 8, 128256, 8192, 500000.0},
    {"llama2-7b", 4096, 11008, 32, 32, 32, 32000, 4096, 10000.0},
    {"tiny", 256, 768, 4, 8, 4, 4096, 1024, 10000.0},
};

const Preset& find_preset(const std::string& name) {
  for (const auto& preset : kPresets) {
    if (name == preset.name) return preset;
  }
  fail("unknown preset '", name, "' (known: llama3-8b, llama2-7b, tiny)");
}

const char* torch_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::BF16:
      return "bfloat16";
    case DType::F16:
      return "float16";
    case DType::F32:
      return "float32";
    default:
      fail("synthetic checkpoints are bf16, f16 or f32, not ", dtype_name(dtype));
  }
}

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct Tensor {
  std::string name;
  std::vector<std::int64_t> shape;
  bool is_norm;  // all ones
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (const auto dim : shape) n *= dim;
    return n;
  }
};

// Hugging Face's order: the embedding, each layer's tensors, the final norm, lm_head.
std::vector<Tensor> checkpoint_tensors(const ModelConfig& config) {
  const auto modules = module_shapes(config);
  const auto vectors = vector_shapes(config);
  std::vector<Tensor> tensors;
  const auto add_module = [&tensors](const ModuleShape& module) {
    tensors.push_back({module.path + ".weight", {module.out_features, module.in_features}, false});
  };
  add_module(modules.front());
  for (std::int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    const std::string prefix = "model.layers." + std::to_string(layer) + ".";
    for (const auto& module : modules) {
      if (module.path.starts_with(prefix)) add_module(module);
    }
    for (const auto& vector : vectors) {
      if (vector.name.starts_with(prefix)) tensors.push_back({vector.name, {vector.size}, true});
    }
  }
  tensors.push_back({"model.norm.weight", {config.hidden_size}, true});
  if (!config.tie_word_embeddings) add_module(modules.back());
  return tensors;
}

// Elements [first, first + count) of tensor `index`, converted to `dtype` into `out`.
void generate(const Tensor& tensor, std::uint64_t seed, std::size_t index, std::int64_t first,
              std::int64_t count, DType dtype, std::byte* out) {
  const std::size_t element = dtype_size(dtype);
  // Uniform on [-a, a] has standard deviation a / sqrt(3).
  const float half_width = 0.02f * std::sqrt(3.0f);
  parallel_for(
      first / kBlockElements, (first + count + kBlockElements - 1) / kBlockElements, 1,
      [&](std::int64_t block_begin, std::int64_t block_end) {
        std::vector<float> values(kBlockElements);
        for (std::int64_t block = block_begin; block < block_end; ++block) {
          const std::int64_t begin = std::max(first, block * kBlockElements);
          const std::int64_t end = std::min(first + count, (block + 1) * kBlockElements);
          std::uint64_t state =
              seed ^ (static_cast<std::uint64_t>(index) << 40) ^ static_cast<std::uint64_t>(block);
          splitmix64(state);
          std::uint64_t bits = 0;
          for (std::int64_t i = block * kBlockElements; i < end; ++i) {
            if ((i & 3) == 0) bits = splitmix64(state);
            const auto draw = static_cast<std::uint16_t>(bits >> (16 * (i & 3)));
            if (i >= begin) {
              values[static_cast<std::size_t>(i - begin)] =
                  tensor.is_norm ? 1.0f : half_width * (static_cast<float>(draw) / 32767.5f - 1.0f);
            }
          }
          convert_from_f32(values.data(), static_cast<std::size_t>(end - begin), dtype,
                           out + static_cast<std::size_t>(begin - first) * element);
        }
      });
}

}  // namespace

std::vector<std::string> synthetic_presets() {
  std::vector<std::string> names;
  for (const auto& preset : kPresets) names.emplace_back(preset.name);
  return names;
}

nlohmann::json synthetic_config(const SyntheticCheckpointOptions& options) {
  const Preset& preset = find_preset(options.preset);
  if (options.layers < 0) fail("layers ", options.layers, " must be at least 1");
  const std::int64_t layers = options.layers == 0 ? preset.layers : options.layers;
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_size", preset.hidden},
          {"intermediate_size", preset.intermediate},
          {"num_hidden_layers", layers},
          {"num_attention_heads", preset.heads},
          {"num_key_value_heads", preset.kv_heads},
          {"head_dim", preset.hidden / preset.heads},
          {"vocab_size", preset.vocab},
          {"max_position_embeddings", preset.max_positions},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", preset.rope_theta},
          {"hidden_act", "silu"},
          {"attention_bias", false},
          {"mlp_bias", false},
          {"tie_word_embeddings", false},
          {"bos_token_id", 0},
          {"eos_token_id", 0},
          {"torch_dtype", torch_dtype_name(options.dtype)}};
}

std::uint64_t write_synthetic_checkpoint(const SyntheticCheckpointOptions& options,
                                         const fs::path& dir) {
  const nlohmann::json raw = synthetic_config(options);
  const ModelConfig config = parse_model_config(raw, "preset '" + options.preset + "'");
  if (options.max_shard_bytes == 0) fail("shard size must be positive");
  const auto tensors = checkpoint_tensors(config);
  const std::size_t element = dtype_size(options.dtype);
  // Shards: a new one starts when the next tensor would overflow this one.
  std::vector<std::size_t> shard_of;
  std::uint64_t shard_bytes = 0, total_bytes = 0;
  std::size_t shards = 1;
  for (const auto& tensor : tensors) {
    const auto bytes = static_cast<std::uint64_t>(tensor.numel()) * element;
    if (shard_bytes > 0 && shard_bytes + bytes > options.max_shard_bytes) {
      ++shards;
      shard_bytes = 0;
    }
    shard_of.push_back(shards - 1);
    shard_bytes += bytes;
    total_bytes += bytes;
  }
  StagedDirectory staged(dir);
  std::map<std::string, std::string> weight_map;
  std::vector<std::byte> buffer;
  for (std::size_t shard = 0; shard < shards; ++shard) {
    char name[64];
    if (shards == 1) {
      std::snprintf(name, sizeof name, "model.safetensors");
    } else {
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", shard + 1, shards);
    }
    SafetensorsWriter writer(staged.path() / name, {{"format", "pt"}});
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      if (shard_of[i] != shard) continue;
      writer.declare(tensors[i].name, options.dtype, tensors[i].shape);
      weight_map[tensors[i].name] = name;
    }
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      if (shard_of[i] != shard) continue;
      const std::int64_t numel = tensors[i].numel();
      for (std::int64_t first = 0; first < numel; first += kBatchElements) {
        throw_if_interrupted();
        const std::int64_t count = std::min(kBatchElements, numel - first);
        buffer.resize(static_cast<std::size_t>(count) * element);
        generate(tensors[i], options.seed, i, first, count, options.dtype, buffer.data());
        writer.write(tensors[i].name, buffer);
      }
    }
    writer.commit();
  }
  if (shards > 1) write_safetensors_index(staged.path(), weight_map, total_bytes);
  write_file_atomic(staged.path() / "config.json", raw.dump(2) + "\n");
  for (const char* file : kTokenizerFiles) {
    const fs::path source = options.tokenizer_dir / file;
    if (file == std::string("tokenizer.json") && !fs::exists(source)) {
      fail(source.string(), ": file not found (the synthetic model's tokenizer is copied from it)");
    }
    if (!fs::exists(source)) continue;
    std::error_code error;
    fs::copy_file(source, staged.path() / file, error);
    if (error) fail(dir.string(), ": cannot copy ", file, ": ", error.message());
  }
  staged.commit();
  return total_bytes;
}

}  // namespace uq
