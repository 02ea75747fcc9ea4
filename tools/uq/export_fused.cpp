#include "export_fused.hpp"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "api/quantize.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"
#include "io/formats/layout_writer.hpp"
#include "model/decoder.hpp"
#include "model/float_weight.hpp"
#include "train/lora_attach.hpp"
#include "train/training_ops.hpp"

namespace uq::cli {
namespace {

DType parse_export_dtype(const std::string& name) {
  if (name == "float32") return DType::F32;
  if (name == "bfloat16") return DType::BF16;
  if (name == "float16") return DType::F16;
  fail("option --dtype: '", name, "' is not float32, bfloat16 or float16");
}

std::vector<float> dense(const Weight& weight) {
  std::vector<float> values(static_cast<std::size_t>(weight.out_features() * weight.in_features()));
  weight.dequantize_rows(0, weight.out_features(), values.data());
  return values;
}

// scale·B·A, the change the adapter makes to W.
std::vector<float> adapter_delta(const LoraAdapter& adapter) {
  std::vector<float> delta(static_cast<std::size_t>(adapter.out_features * adapter.in_features));
  train::gemm<float>(false, false, adapter.out_features, adapter.in_features, adapter.rank,
                     adapter.scale, adapter.b.data(), adapter.rank, adapter.a.data(),
                     adapter.in_features, 0.0f, delta.data(), adapter.in_features);
  return delta;
}

// How much of the intended change (scale·B·A) the exported weight carries.
struct EffectSurvival {
  double error_squares = 0.0;     // ||actual Δ - intended Δ||²
  double intended_squares = 0.0;  // ||intended Δ||²
  double dot = 0.0;               // <actual Δ, intended Δ>
  double actual_squares = 0.0;

  void add(const std::vector<float>& base, const std::vector<float>& exported,
           const std::vector<float>& intended) {
    for (std::size_t i = 0; i < base.size(); ++i) {
      const double actual = double(exported[i]) - double(base[i]);
      const double want = intended[i];
      error_squares += (actual - want) * (actual - want);
      intended_squares += want * want;
      dot += actual * want;
      actual_squares += actual * actual;
    }
  }
  // 1 - ||actual - intended|| / ||intended||: 1 when the change is kept exactly.
  double retained() const { return 1.0 - std::sqrt(error_squares / intended_squares); }
  double cosine() const { return dot / std::sqrt(actual_squares * intended_squares); }
};

}  // namespace

void export_fused(const FusedExportOptions& options) {
  if (options.adapter.empty()) fail("option --fuse needs --adapter DIR");
  const DType dtype = parse_export_dtype(options.dtype);
  auto model = load_model(options.model);
  attach_adapter_directory(*model, options.adapter);
  const std::vector<NamedLoraAdapter> adapters = model->lora_parameters();

  // The fused model in float32 memory: every slot becomes a FloatWeight.
  auto fused = std::make_shared<Model>(*model);
  std::map<std::string, std::vector<float>> bases;  // dequantized frozen weights
  std::map<std::string, const NamedLoraAdapter*> adapter_of;
  for (const auto& named : adapters) adapter_of[named.path] = &named;
  for (auto& slot : fused->weight_slots()) {
    const std::vector<float> values = dense(*slot.weight);  // a LoraWeight gives W + scale·B·A
    if (const auto found = adapter_of.find(slot.path); found != adapter_of.end()) {
      bases[slot.path] = dense(*found->second->base);
    }
    slot.weight = std::make_shared<FloatWeight>(DType::F32, slot.weight->out_features(),
                                                slot.weight->in_features(), values.data());
  }

  EffectSurvival survival;
  nlohmann::json report = {{"adapters", adapters.size()}, {"output", options.output}};
  if (options.bits == 0) {
    std::vector<LayoutTensor> tensors;
    for (const auto& [path, weight] : fused->named_weights()) {
      const auto& stored = static_cast<const FloatWeight&>(*weight);
      const std::vector<float> values = dense(stored);
      LayoutTensor tensor{
          path + ".weight", dtype, {stored.out_features(), stored.in_features()}, {}, {}};
      tensor.owned.resize(values.size() * dtype_size(dtype));
      convert_from_f32(values.data(), values.size(), dtype, tensor.owned.data());
      if (bases.count(path)) {
        std::vector<float> rounded(values.size());
        convert_to_f32(dtype, tensor.owned.data(), values.size(), rounded.data());
        survival.add(bases[path], rounded, adapter_delta(*adapter_of[path]->adapter));
      }
      tensors.push_back(std::move(tensor));
    }
    for (const auto& [name, values] : fused->named_vectors()) {
      tensors.push_back(vector_tensor(name, *values, fused->config().dtype));
    }
    nlohmann::json config = model->config().raw;
    config.erase("quantization");
    config.erase("quantization_config");
    config["torch_dtype"] = options.dtype;
    LayoutOutput output(options.output, {{"format", "pt"}}, {});
    for (const auto& tensor : tensors) output.plan(tensor.name, tensor.dtype, tensor.shape);
    for (const auto& tensor : tensors) output.add(tensor);
    output.commit(config, {}, fused->source_directory());
    report["format"] = "float";
    report["dtype"] = options.dtype;
  } else {
    UnifiedQuantizationConfig config;
    config.backend = options.backend;
    config.bits = options.bits;
    config.group_size = options.group_size;
    auto [quantized, quantizer] = quantize_model(fused, config);
    for (const auto& [path, weight] : quantized->named_weights()) {
      if (bases.count(path)) {
        survival.add(bases[path], dense(*weight), adapter_delta(*adapter_of[path]->adapter));
      }
    }
    quantizer.save_model(*quantized, options.output);
    report["format"] = quantizer.report().backend;
    report["bits"] = options.bits;
    report["group_size"] = options.group_size;
  }
  report["adapter_effect_retained"] = survival.retained();
  report["adapter_delta_cosine"] = survival.cosine();
  if (options.json) {
    std::printf("%s\n", report.dump().c_str());
  } else {
    std::printf(
        "fused %zu adapters into %s; adapter effect retained %.4f (1 = exact), cosine of "
        "weight change to the adapter's %.4f\n",
        adapters.size(), options.output.c_str(), survival.retained(), survival.cosine());
  }
}

}  // namespace uq::cli
