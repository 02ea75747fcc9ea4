#include "io/formats/quanto_layout.hpp"

#include "core/error.hpp"
#include "io/formats/layout_writer.hpp"
#include "model/decoder.hpp"
#include "model/float_weight.hpp"
#include "quant/affine_weight.hpp"
#include "quant/float8.hpp"
#include "quant/float8_weight.hpp"
#include "quant/quanto_activation_weight.hpp"
#include "quant/quanto_activations.hpp"
#include "quant/quanto_affine.hpp"
#include "quant/symmetric_weight.hpp"

namespace uq {
namespace {

std::span<const std::uint8_t> as_u8(const TensorView& view) {
  return {reinterpret_cast<const std::uint8_t*>(view.data), view.nbytes};
}

// quanto's name of the weights qtype `weight` holds in its layout ("none": float; empty: no
// quanto form).
std::string quanto_weights_qtype(const Weight& weight) {
  if (const auto* float8 = dynamic_cast<const Float8Weight*>(&weight)) {
    return float8->format() == DType::F8_E4M3 ? "qfloat8_e4m3fn" : "qfloat8_e5m2";
  }
  if (const auto* symmetric = dynamic_cast<const SymmetricWeight*>(&weight)) {
    return symmetric->bits() == 8 ? "qint8" : "";
  }
  if (const auto* affine = dynamic_cast<const AffineWeight*>(&weight)) {
    return affine->bits() == 4 ? "qint4" : affine->bits() == 2 ? "qint2" : "";
  }
  if (dynamic_cast<const FloatWeight*>(&weight) != nullptr) return "none";
  return "";
}

// optimum-quanto's requantize quantizes exactly the modules quantization_map.json lists, to the
// weights qtype each names: quantized tensors of another qtype, or of a module the map does not
// list, are a file quanto itself would not load. Float weights are accepted whatever the entry
// says: a model saved before quanto's freeze() stores them so, and quanto quantizes them while
// loading (here they run as stored, in float). No map (null): the tensors alone decide.
void check_map_weights(const nlohmann::json& quantization_map, const std::string& map_origin,
                       const std::string& path, const Weight& weight) {
  const std::string stored = quanto_weights_qtype(weight);
  if (!quantization_map.is_object() || stored == "none") return;
  const auto entry = quantization_map.find(path);
  if (entry == quantization_map.end()) {
    fail(map_origin, ": no entry for '", path, "', whose tensors hold ", stored);
  }
  std::string declared = "none";
  if (entry->is_object() && entry->contains("weights") && (*entry)["weights"].is_string()) {
    declared = (*entry)["weights"].get<std::string>();
  }
  if (declared == "qfloat8") declared = "qfloat8_e4m3fn";  // quanto's alias
  if (declared != stored) {
    fail(map_origin, ": '", path, "' declares weights ", declared, ", but its tensors hold ",
         stored);
  }
}

// qint8 (I8 codes) or qfloat8 (F8_E4M3 / F8_E5M2 codes), one scale per output row.
std::shared_ptr<Weight> read_qbytes(const TensorSource& tensors, const std::string& path) {
  const TensorView data = tensors.tensor(path + ".weight._data");
  const TensorView scale = tensors.tensor(path + ".weight._scale");
  if (data.dtype != DType::I8 && !is_float8(data.dtype)) {
    fail("tensor '", data.name,
         "': quanto 8-bit codes must be I8 (qint8) or F8_E4M3/F8_E5M2 "
         "(qfloat8), not ",
         dtype_name(data.dtype));
  }
  if (data.shape.size() != 2 || scale.numel() != data.shape[0]) {
    fail("tensor '", scale.name, "': expected one scale per output row of '", data.name, "'");
  }
  if (data.dtype == DType::I8) {
    return SymmetricWeight::from_codes(data.shape[0], data.shape[1], 8, {data.data, data.nbytes},
                                       scale.dtype, {scale.data, scale.nbytes}, path + ".weight");
  }
  return Float8Weight::from_codes(data.shape[0], data.shape[1], data.dtype,
                                  {data.data, data.nbytes}, scale.dtype, {scale.data, scale.nbytes},
                                  path + ".weight");
}

float read_scalar(const TensorSource& tensors, const std::string& name) {
  const TensorView view = tensors.tensor(name);
  if (view.numel() != 1 || !is_float(view.dtype)) {
    fail("tensor '", name, "': expected one float, got ", view.numel(), " of ",
         dtype_name(view.dtype));
  }
  float value = 0.0f;
  convert_to_f32(view.dtype, view.data, 1, &value);
  return value;
}

// The module's weight with quanto's activation quantization when its map
// entry names an activation qtype.
std::shared_ptr<Weight> with_activations(std::shared_ptr<Weight> weight,
                                         const TensorSource& tensors,
                                         const nlohmann::json& quantization_map,
                                         const std::string& map_origin, const std::string& path) {
  if (!quantization_map.is_object() || !quantization_map.contains(path)) return weight;
  const auto& entry = quantization_map.at(path);
  if (!entry.is_object() || !entry.contains("activations") || !entry["activations"].is_string()) {
    return weight;
  }
  const auto qtype = activation_qtype(entry["activations"].get<std::string>(),
                                      map_origin + " '" + path + "' activations");
  if (!qtype) return weight;
  if (tensors.contains(path + ".bias")) {
    fail("tensor '", path, ".bias': quantized activations with a bias are not supported");
  }
  const DType scale_dtype = tensors.tensor(path + ".input_scale").dtype;
  const ActivationScales scales{read_scalar(tensors, path + ".input_scale"),
                                read_scalar(tensors, path + ".output_scale")};
  return std::make_shared<QuantoActivationWeight>(std::move(weight), *qtype, scale_dtype, scales,
                                                  path + ".input_scale");
}

std::shared_ptr<Weight> read_qbits(const TensorSource& tensors, const ModelConfig& config,
                                   const std::string& path) {
  const TensorView data = tensors.tensor(path + ".weight._data._data");
  const TensorView scale = tensors.tensor(path + ".weight._scale");
  const TensorView shift = tensors.tensor(path + ".weight._shift");
  if (data.dtype != DType::U8 || data.shape.size() != 2) {
    fail("tensor '", data.name, "': packed quanto codes must be a 2-D U8 tensor");
  }
  if (scale.dtype != shift.dtype || scale.numel() != shift.numel() || shift.dtype == DType::U8) {
    fail("tensor '", shift.name, "': float shifts with the dtype and size of '", scale.name,
         "' expected (integer zero-points are not supported)");
  }
  const std::int64_t groups = scale.numel();
  const std::int64_t group = data.shape[1];
  const std::int64_t in = llama_in_features(config, path);
  int bits = 0;
  if (groups > 2 && data.shape[0] == (groups + 1) / 2) bits = 4;
  if (groups > 2 && data.shape[0] == (groups + 3) / 4) bits = 2;
  if (bits == 0 || in % group != 0 || group != quanto_group_size(in)) {
    fail("tensor '", data.name, "': shape [", data.shape[0], ", ", data.shape[1], "] with ", groups,
         " scales does not fit qint4 or qint2 with quanto's group size for in_features ", in);
  }
  const std::int64_t out = groups * group / in;
  const auto codes = quanto_unpack(as_u8(data), groups, group, bits);
  return affine_from_quanto(out, in, bits, group, codes, scale.dtype, {scale.data, scale.nbytes},
                            {shift.data, shift.nbytes}, path + ".weight");
}

LayoutTensor owned(std::string name, DType dtype, std::vector<std::int64_t> shape,
                   std::vector<std::byte> bytes) {
  return {std::move(name), dtype, std::move(shape), {}, std::move(bytes)};
}

// The module's tensors; its quantization_map.json entry (null when kept float).
nlohmann::json collect_module(const std::string& path, const Weight& stored, DType model_dtype,
                              std::vector<LayoutTensor>& tensors) {
  const auto* activations = dynamic_cast<const QuantoActivationWeight*>(&stored);
  const Weight& weight = activations != nullptr ? *activations->weight() : stored;
  if (path == "model.embed_tokens" && dynamic_cast<const FloatWeight*>(&weight) == nullptr) {
    fail(path, ": optimum-quanto quantizes Linear layers only, and this embedding is ",
         weight.describe(), " (quantize the float model with --backend quanto instead)");
  }
  if (const auto* float8 = dynamic_cast<const Float8Weight*>(&weight)) {
    tensors.push_back({path + ".weight._data",
                       float8->format(),
                       {float8->out_features(), float8->in_features()},
                       std::as_bytes(float8->codes()),
                       {}});
    tensors.push_back(owned(path + ".weight._scale", float8->scale_dtype(),
                            {float8->out_features(), 1}, float8->scale_bytes()));
  } else if (const auto* symmetric = dynamic_cast<const SymmetricWeight*>(&weight)) {
    if (symmetric->bits() != 8) {
      fail(path, ": symmetric int", symmetric->bits(),
           " has no quanto form (quanto's int4 is affine per group)");
    }
    const auto codes = std::as_bytes(symmetric->codes());
    tensors.push_back({path + ".weight._data",
                       DType::I8,
                       {symmetric->out_features(), symmetric->in_features()},
                       codes,
                       {}});
    tensors.push_back(owned(path + ".weight._scale", symmetric->scale_dtype(),
                            {symmetric->out_features(), 1}, symmetric->scale_bytes()));
  } else if (const auto* affine = dynamic_cast<const AffineWeight*>(&weight)) {
    const int bits = affine->bits();
    const auto in = affine->in_features();
    if ((bits != 2 && bits != 4) || affine->group_size() != quanto_group_size(in)) {
      fail(path, ": ", affine->describe(), " has no quanto form (qint2/qint4 with group size ",
           quanto_group_size(in), " for in_features ", in, ")");
    }
    const std::int64_t groups = affine->out_features() * in / affine->group_size();
    auto packed = quanto_pack(affine_codes(*affine), groups, affine->group_size(), bits);
    const auto packed_rows = static_cast<std::int64_t>(packed.size()) / affine->group_size();
    const auto* first = reinterpret_cast<const std::byte*>(packed.data());
    tensors.push_back(owned(path + ".weight._data._data", DType::U8,
                            {packed_rows, affine->group_size()},
                            std::vector<std::byte>(first, first + packed.size())));
    tensors.push_back(
        {path + ".weight._scale", affine->param_dtype(), {groups, 1}, affine->scales(), {}});
    tensors.push_back(owned(path + ".weight._shift", affine->param_dtype(), {groups, 1},
                            quanto_shift_bytes(*affine)));
  } else if (const auto* dense = dynamic_cast<const FloatWeight*>(&weight)) {
    if (activations != nullptr)
      fail(path, ": quanto quantizes activations of quantized linears only");
    tensors.push_back({path + ".weight",
                       dense->dtype(),
                       {dense->out_features(), dense->in_features()},
                       dense->bytes(),
                       {}});
    return nullptr;
  } else {
    fail(path, ": ", weight.describe(), " weights cannot be saved in quanto's layout");
  }
  // quanto keeps both scales at 1 in the model dtype when activations are not quantized.
  const ActivationScales scales =
      activations != nullptr ? activations->scales() : ActivationScales{};
  const DType scale_dtype = activations != nullptr ? activations->scale_dtype() : model_dtype;
  for (const auto& [name, value] :
       {std::pair{".input_scale", scales.input}, std::pair{".output_scale", scales.output}}) {
    std::vector<std::byte> bytes(dtype_size(scale_dtype));
    convert_from_f32(&value, 1, scale_dtype, bytes.data());
    tensors.push_back(owned(path + name, scale_dtype, {}, std::move(bytes)));
  }
  return {{"weights", quanto_weights_qtype(weight)},
          {"activations",
           activations != nullptr ? activation_qtype_name(activations->qtype()) : "none"}};
}

}  // namespace

WeightFactory quanto_weights(const TensorSource& tensors, const ModelConfig& config,
                             const nlohmann::json& quantization_map,
                             const std::string& map_origin) {
  return [tensors, config, quantization_map,
          map_origin](const std::string& path) -> std::shared_ptr<Weight> {
    std::shared_ptr<Weight> weight;
    if (tensors.contains(path + ".weight._data._data")) {
      weight = read_qbits(tensors, config, path);
    } else if (tensors.contains(path + ".weight._data")) {
      weight = read_qbytes(tensors, path);
    } else {
      weight = FloatWeight::from_tensor(tensors.tensor(path + ".weight"));
    }
    check_map_weights(quantization_map, map_origin, path, *weight);
    return with_activations(std::move(weight), tensors, quantization_map, map_origin, path);
  };
}

class QuantoEncoder final : public LayoutEncoder {
 public:
  explicit QuantoEncoder(DType model_dtype) : model_dtype_(model_dtype) {}

  std::vector<LayoutTensor> module_tensors(const std::string& path, const Weight& weight) override {
    std::vector<LayoutTensor> tensors;
    auto entry = collect_module(path, weight, model_dtype_, tensors);
    if (!entry.is_null()) map_[path] = std::move(entry);
    return tensors;
  }
  nlohmann::json config(const nlohmann::json& source_config) const override {
    return source_config;
  }
  std::map<std::string, nlohmann::json> json_files() const override {
    return {{"quantization_map.json", map_}};
  }
  std::map<std::string, std::string> metadata() const override { return {{"format", "pt"}}; }

 private:
  DType model_dtype_;
  nlohmann::json map_ = nlohmann::json::object();
};

std::unique_ptr<LayoutEncoder> quanto_encoder(DType model_dtype) {
  return std::make_unique<QuantoEncoder>(model_dtype);
}

void save_quanto_model(const Model& model, const std::filesystem::path& dir) {
  QuantoEncoder encoder(model.config().dtype);
  save_layout(model, dir, encoder);
}

}  // namespace uq
