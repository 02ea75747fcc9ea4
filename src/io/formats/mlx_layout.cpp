#include "io/formats/mlx_layout.hpp"

#include <cstring>
#include <map>
#include <vector>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"
#include "io/staged_directory.hpp"
#include "model/decoder.hpp"
#include "model/float_weight.hpp"
#include "quant/affine_weight.hpp"

namespace uq {
namespace fs = std::filesystem;
namespace {

// mlx-lm's shard limit (MAX_FILE_SIZE_GB = 5, in GiB).
constexpr std::uint64_t kMaxShardBytes = 5ull << 30;

// Tokenizer and generation files copied next to the weights.
constexpr const char* kCopiedFiles[] = {"tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "generation_config.json",
                                        "chat_template.jinja"};

int json_int(const nlohmann::json& object, const char* key, const std::string& where) {
  if (!object.contains(key) || !object[key].is_number_integer()) {
    fail(where, ": '", key, "' must be an integer");
  }
  return object[key].get<int>();
}

// A tensor to write: its bytes live in the model's weights (which outlive the
// save) or, for vectors converted to the model dtype, in `owned`.
struct PendingTensor {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> bytes;
  std::vector<std::byte> owned;
};

PendingTensor vector_tensor(std::string name, const std::vector<float>& values, DType dtype) {
  PendingTensor tensor{std::move(name), dtype, {static_cast<std::int64_t>(values.size())}, {}, {}};
  tensor.owned.resize(values.size() * dtype_size(dtype));
  convert_from_f32(values.data(), values.size(), dtype, tensor.owned.data());
  tensor.bytes = tensor.owned;
  return tensor;
}

// The tensors of one module, and its config entry (nullopt: follows the default).
void collect_module(const std::string& path, const Weight& weight, const MlxQuantization& defaults,
                    std::vector<PendingTensor>& tensors, nlohmann::json& quantization) {
  if (const auto* affine = dynamic_cast<const AffineWeight*>(&weight)) {
    if (affine->bits() == 1 || affine->bits() == 7) {
      fail(path, ": ", affine->bits(),
           "-bit affine is our own extension; the mlx-lm layout holds 2, 3, 4, 5, 6 or 8 bits");
    }
    const auto out = affine->out_features();
    const auto groups = affine->in_features() / affine->group_size();
    const auto codes = affine->codes();
    tensors.push_back({path + ".weight",
                       DType::U32,
                       {out, static_cast<std::int64_t>(codes.size()) / out},
                       std::as_bytes(codes),
                       {}});
    tensors.push_back(
        {path + ".scales", affine->param_dtype(), {out, groups}, affine->scales(), {}});
    tensors.push_back(
        {path + ".biases", affine->param_dtype(), {out, groups}, affine->biases(), {}});
    if (affine->bits() != defaults.bits || affine->group_size() != defaults.group_size) {
      quantization[path] = {{"group_size", affine->group_size()}, {"bits", affine->bits()}};
    }
    return;
  }
  if (const auto* dense = dynamic_cast<const FloatWeight*>(&weight)) {
    tensors.push_back({path + ".weight",
                       dense->dtype(),
                       {dense->out_features(), dense->in_features()},
                       dense->bytes(),
                       {}});
    quantization[path] = false;
    return;
  }
  fail(path, ": a ", weight.describe(), " weight cannot be saved in the mlx-lm layout");
}

void write_shards(const fs::path& dir, std::vector<PendingTensor>& tensors) {
  std::vector<std::vector<PendingTensor*>> shards(1);
  std::uint64_t shard_bytes = 0, total_bytes = 0;
  for (auto& tensor : tensors) {
    if (shard_bytes > 0 && shard_bytes + tensor.bytes.size() > kMaxShardBytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&tensor);
    shard_bytes += tensor.bytes.size();
    total_bytes += tensor.bytes.size();
  }
  std::map<std::string, std::string> weight_map;
  for (std::size_t i = 0; i < shards.size(); ++i) {
    char name[64];
    if (shards.size() == 1) {
      std::snprintf(name, sizeof name, "model.safetensors");
    } else {
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    }
    SafetensorsWriter writer(dir / name, {{"format", "mlx"}});
    for (const auto* tensor : shards[i]) {
      writer.declare(tensor->name, tensor->dtype, tensor->shape);
      weight_map[tensor->name] = name;
    }
    for (const auto* tensor : shards[i]) writer.write(tensor->name, tensor->bytes);
    writer.commit();
  }
  write_safetensors_index(dir, weight_map, total_bytes);
}

}  // namespace

std::optional<MlxQuantization> mlx_quantization_of(const nlohmann::json& config,
                                                   const std::string& origin) {
  const char* key = nullptr;
  if (config.contains("quantization")) {
    key = "quantization";
  } else if (config.contains("quantization_config") && config["quantization_config"].is_object() &&
             !config["quantization_config"].contains("quant_method")) {
    key = "quantization_config";
  }
  if (key == nullptr) return std::nullopt;
  const auto& declared = config[key];
  const std::string where = origin + ": '" + key + "'";
  if (!declared.is_object()) fail(where, " must be an object");
  const std::string mode = declared.value("mode", "affine");
  if (mode != "affine") fail(where, ": mode '", mode, "' is not supported (supported: affine)");
  MlxQuantization quantization;
  quantization.bits = json_int(declared, "bits", where);
  quantization.group_size = json_int(declared, "group_size", where);
  for (const auto& [name, value] : declared.items()) {
    if (name == "bits" || name == "group_size" || name == "mode") continue;
    if (value.is_boolean() || value.is_object()) {
      if (value.is_object()) {
        json_int(value, "bits", where + "['" + name + "']");
        json_int(value, "group_size", where + "['" + name + "']");
      }
      quantization.overrides[name] = value;
    }
  }
  return quantization;
}

WeightFactory mlx_weights(const TensorSource& tensors, const MlxQuantization& quantization) {
  return [tensors, quantization](const std::string& path) -> std::shared_ptr<Weight> {
    int bits = quantization.bits;
    int group_size = quantization.group_size;
    bool declared_quantized = false;
    if (quantization.overrides.contains(path)) {
      const auto& entry = quantization.overrides[path];
      if (entry.is_boolean() && !entry.get<bool>()) {
        return FloatWeight::from_tensor(tensors.tensor(path + ".weight"));
      }
      if (entry.is_object()) {
        bits = entry["bits"].get<int>();
        group_size = entry["group_size"].get<int>();
        declared_quantized = true;
      }
    }
    const TensorView codes = tensors.tensor(path + ".weight");
    const bool has_scales = tensors.contains(path + ".scales");
    if (!has_scales) {
      if (codes.dtype == DType::U32 || declared_quantized) {
        fail("tensor '", path, ".scales' is missing: config.json declares '", path, "' quantized (",
             bits, " bits, group size ", group_size, ")");
      }
      return FloatWeight::from_tensor(codes);
    }
    if (!tensors.contains(path + ".biases")) {
      fail("tensor '", path, ".biases' is missing (affine quantization needs scales and biases)");
    }
    const TensorView scales = tensors.tensor(path + ".scales");
    const TensorView biases = tensors.tensor(path + ".biases");
    if (codes.dtype != DType::U32 || codes.shape.size() != 2) {
      fail("tensor '", path, ".weight': quantized codes must be a 2-D U32 tensor, found ",
           dtype_name(codes.dtype), " of rank ", codes.shape.size());
    }
    if (scales.shape.size() != 2 || scales.shape != biases.shape || scales.dtype != biases.dtype) {
      fail("tensors '", path, ".scales' and '", path,
           ".biases' must be 2-D with equal shapes and dtypes");
    }
    const std::int64_t out = codes.shape[0];
    const std::int64_t in = codes.shape[1] * 32 / bits;
    if (codes.shape[1] * 32 % bits != 0 || scales.shape[0] != out ||
        scales.shape[1] * group_size != in) {
      fail("tensor '", path, ".weight': shapes [", codes.shape[0], ", ", codes.shape[1],
           "] (codes) and [", scales.shape[0], ", ", scales.shape[1], "] (scales) do not fit ",
           bits, " bits with group size ", group_size);
    }
    // Views into the file may be unaligned for uint32: copy the codes out.
    std::vector<std::uint32_t> words(codes.nbytes / sizeof(std::uint32_t));
    std::memcpy(words.data(), codes.data, codes.nbytes);
    return AffineWeight::from_packed(out, in, bits, group_size, words, scales.dtype,
                                     {scales.data, scales.nbytes}, {biases.data, biases.nbytes},
                                     path);
  };
}

void save_mlx_model(const Model& model, const fs::path& dir,
                    const MlxQuantization& default_quantization) {
  std::vector<PendingTensor> tensors;
  nlohmann::json quantization = {{"group_size", default_quantization.group_size},
                                 {"bits", default_quantization.bits},
                                 {"mode", "affine"}};
  for (const auto& [path, weight] : model.named_weights()) {
    collect_module(path, *weight, default_quantization, tensors, quantization);
  }
  const DType vector_dtype = model.config().dtype;
  for (const auto& [name, values] : model.named_vectors()) {
    tensors.push_back(vector_tensor(name, *values, vector_dtype));
  }
  StagedDirectory staged(dir);
  write_shards(staged.path(), tensors);
  nlohmann::json config = model.config().raw;
  config["quantization"] = quantization;
  config["quantization_config"] = quantization;
  write_file_atomic(staged.path() / "config.json", config.dump(4) + "\n");
  const fs::path& source = model.source_directory();
  for (const char* file : kCopiedFiles) {
    if (!source.empty() && fs::exists(source / file)) {
      std::error_code error;
      fs::copy_file(source / file, staged.path() / file, error);
      if (error) fail(staged.final_path().string(), ": cannot copy ", file, ": ", error.message());
    }
  }
  staged.commit();
}

}  // namespace uq
