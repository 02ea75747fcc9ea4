#include "io/formats/mlx_layout.hpp"

#include <cstring>
#include <map>
#include <vector>

#include "core/error.hpp"
#include "io/formats/layout_writer.hpp"
#include "io/safetensors.hpp"
#include "model/decoder.hpp"
#include "model/float_weight.hpp"
#include "quant/affine_weight.hpp"

namespace uq {
namespace fs = std::filesystem;
namespace {

// mlx-lm's shard limit (MAX_FILE_SIZE_GB = 5, in GiB).
constexpr std::uint64_t kMaxShardBytes = 5ull << 30;

int json_int(const nlohmann::json& object, const char* key, const std::string& where) {
  if (!object.contains(key) || !object[key].is_number_integer()) {
    fail(where, ": '", key, "' must be an integer");
  }
  return object[key].get<int>();
}

class MlxEncoder final : public LayoutEncoder {
 public:
  explicit MlxEncoder(const MlxQuantization& defaults)
      : defaults_(defaults),
        quantization_(
            {{"group_size", defaults.group_size}, {"bits", defaults.bits}, {"mode", "affine"}}) {}

  std::vector<LayoutTensor> module_tensors(const std::string& path, const Weight& weight) override {
    if (const auto* affine = dynamic_cast<const AffineWeight*>(&weight)) {
      if (affine->bits() == 1 || affine->bits() == 7) {
        fail(path, ": ", affine->bits(),
             "-bit affine is our own extension; the mlx-lm layout holds 2, 3, 4, 5, 6 or 8 bits");
      }
      // mlx's affine quantization takes groups of 32, 64 or 128 only; quanto picks 96 (or the
      // whole row) for some widths, which `uq export` would otherwise carry over.
      if (affine->group_size() != 32 && affine->group_size() != 64 && affine->group_size() != 128) {
        fail(path, ": affine groups of ", affine->group_size(),
             "; the mlx-lm layout holds groups of 32, 64 or 128");
      }
      const auto out = affine->out_features();
      const auto groups = affine->in_features() / affine->group_size();
      const auto codes = affine->codes();
      if (affine->bits() != defaults_.bits || affine->group_size() != defaults_.group_size) {
        quantization_[path] = {{"group_size", affine->group_size()}, {"bits", affine->bits()}};
      }
      std::vector<LayoutTensor> tensors;
      tensors.push_back({path + ".weight",
                         DType::U32,
                         {out, static_cast<std::int64_t>(codes.size()) / out},
                         std::as_bytes(codes),
                         {}});
      tensors.push_back(
          {path + ".scales", affine->param_dtype(), {out, groups}, affine->scales(), {}});
      tensors.push_back(
          {path + ".biases", affine->param_dtype(), {out, groups}, affine->biases(), {}});
      return tensors;
    }
    if (const auto* dense = dynamic_cast<const FloatWeight*>(&weight)) {
      quantization_[path] = false;
      std::vector<LayoutTensor> tensors;
      tensors.push_back({path + ".weight",
                         dense->dtype(),
                         {dense->out_features(), dense->in_features()},
                         dense->bytes(),
                         {}});
      return tensors;
    }
    fail(path, ": ", weight.describe(), " weights cannot be saved in the mlx-lm layout");
  }

  nlohmann::json config(const nlohmann::json& source_config) const override {
    nlohmann::json config = source_config;
    config["quantization"] = quantization_;
    config["quantization_config"] = quantization_;
    return config;
  }

  std::map<std::string, std::string> metadata() const override { return {{"format", "mlx"}}; }
  ShardPolicy shard_policy() const override { return {kMaxShardBytes, true}; }

 private:
  MlxQuantization defaults_;
  nlohmann::json quantization_;
};

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

std::unique_ptr<LayoutEncoder> mlx_encoder(const MlxQuantization& default_quantization) {
  return std::make_unique<MlxEncoder>(default_quantization);
}

void save_mlx_model(const Model& model, const fs::path& dir,
                    const MlxQuantization& default_quantization) {
  MlxEncoder encoder(default_quantization);
  save_layout(model, dir, encoder);
}

}  // namespace uq
