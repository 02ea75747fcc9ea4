#include "io/formats/custom_layout.hpp"

#include "core/error.hpp"
#include "io/formats/layout_writer.hpp"
#include "model/decoder.hpp"
#include "model/float_weight.hpp"
#include "quant/symmetric_weight.hpp"

namespace uq {
namespace {

constexpr const char* kQuantMethod = "uq-custom";

std::shared_ptr<Weight> read_symmetric(const TensorSource& tensors, const ModelConfig& config,
                                       const std::string& path) {
  const TensorView codes = tensors.tensor(path + ".weight");
  const TensorView scales = tensors.tensor(path + ".weight_scale");
  if (codes.shape.size() != 2 || (codes.dtype != DType::I8 && codes.dtype != DType::U8)) {
    fail("tensor '", codes.name, "': custom codes must be a 2-D I8 (int8) or U8 (int4) tensor");
  }
  if (scales.dtype != DType::F32 || scales.shape.size() != 1 || scales.shape[0] != codes.shape[0]) {
    fail("tensor '", scales.name, "': expected F32 [", codes.shape[0], "]");
  }
  const int bits = codes.dtype == DType::I8 ? 8 : 4;
  std::int64_t in = codes.shape[1];
  if (bits == 4) {
    in = llama_in_features(config, path);
    if ((in + 1) / 2 != codes.shape[1]) {
      fail("tensor '", codes.name, "': ", codes.shape[1], " bytes per row do not hold ", in,
           " int4 codes");
    }
  }
  return SymmetricWeight::from_codes(codes.shape[0], in, bits, {codes.data, codes.nbytes},
                                     DType::F32, {scales.data, scales.nbytes}, codes.name);
}

}  // namespace

bool is_custom_layout(const nlohmann::json& config) {
  return config.contains("quantization_config") && config["quantization_config"].is_object() &&
         config["quantization_config"].value("quant_method", "") == kQuantMethod;
}

WeightFactory custom_weights(const TensorSource& tensors, const ModelConfig& config) {
  return [tensors, config](const std::string& path) -> std::shared_ptr<Weight> {
    if (tensors.contains(path + ".weight_scale")) return read_symmetric(tensors, config, path);
    return FloatWeight::from_tensor(tensors.tensor(path + ".weight"));
  };
}

class CustomEncoder final : public LayoutEncoder {
 public:
  explicit CustomEncoder(int bits) : bits_(bits) {}

  std::vector<LayoutTensor> module_tensors(const std::string& path, const Weight& weight) override {
    std::vector<LayoutTensor> tensors;
    if (const auto* symmetric = dynamic_cast<const SymmetricWeight*>(&weight)) {
      if (symmetric->scale_dtype() != DType::F32) {
        fail(path, ": custom layout scales are F32, this weight's are ",
             dtype_name(symmetric->scale_dtype()));
      }
      const auto out = symmetric->out_features();
      const auto codes = std::as_bytes(symmetric->codes());
      tensors.push_back({path + ".weight",
                         symmetric->bits() == 8 ? DType::I8 : DType::U8,
                         {out, static_cast<std::int64_t>(codes.size()) / out},
                         codes,
                         {}});
      tensors.push_back({path + ".weight_scale", DType::F32, {out}, {}, symmetric->scale_bytes()});
    } else if (const auto* dense = dynamic_cast<const FloatWeight*>(&weight)) {
      tensors.push_back({path + ".weight",
                         dense->dtype(),
                         {dense->out_features(), dense->in_features()},
                         dense->bytes(),
                         {}});
    } else {
      fail(path, ": ", weight.describe(), " weights cannot be saved in the custom layout");
    }
    return tensors;
  }
  nlohmann::json config(const nlohmann::json& source_config) const override {
    nlohmann::json config = source_config;
    config["quantization_config"] = {
        {"quant_method", kQuantMethod}, {"scheme", "symmetric per-channel"}, {"bits", bits_}};
    return config;
  }
  std::map<std::string, std::string> metadata() const override {
    return {{"format", kQuantMethod}};
  }

 private:
  int bits_;
};

std::unique_ptr<LayoutEncoder> custom_encoder(int bits) {
  return std::make_unique<CustomEncoder>(bits);
}

void save_custom_model(const Model& model, const std::filesystem::path& dir, int bits) {
  CustomEncoder encoder(bits);
  save_layout(model, dir, encoder);
}

}  // namespace uq
