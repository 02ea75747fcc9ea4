#include "api/quantize.hpp"

#include <chrono>
#include <map>

#include "io/formats/layout_writer.hpp"

#include "api/backend.hpp"
#include "api/memory_budget.hpp"
#include "api/module_quantization.hpp"
#include "api/quanto_activation_calibration.hpp"
#include "api/streaming_quantize.hpp"
#include "calibration/calibrate_model.hpp"
#include "core/error.hpp"
#include "core/interrupt.hpp"
#include "core/progress.hpp"
#include "model/decoder.hpp"
#include "model/float_weight.hpp"
#include "quant/layer_pattern.hpp"
#include "quant/quanto_activations.hpp"
#include "train/lora_attach.hpp"
#include "train/lora_weight.hpp"

namespace uq {
namespace {

std::vector<std::string> all_module_paths(const Model& model) {
  std::vector<std::string> paths;
  for (const auto& [path, weight] : model.named_weights()) paths.push_back(path);
  return paths;
}

}  // namespace

AutoChoice resolve_backend(const UnifiedQuantizationConfig& config) {
  return choose_backend(auto_request(config));
}

void apply_choice(const AutoChoice& choice, QuantizationReport& report) {
  report.backend = choice.backend;
  report.backend_reason = choice.reason;
  report.device = choice.device;
}

void warn_unmatched_patterns(const UnifiedQuantizationConfig& config,
                             const std::vector<std::string>& paths,
                             std::vector<std::string>& warnings) {
  const auto matches_any = [&paths](const std::string& pattern) {
    for (const auto& path : paths) {
      if (pattern_matches(pattern, path)) return true;
    }
    return false;
  };
  for (const auto& [pattern, bits] : config.layer_bits) {
    if (!matches_any(pattern))
      warnings.push_back("layer pattern '" + pattern + "' matched no module");
  }
  for (const auto& pattern : config.skip) {
    if (!matches_any(pattern))
      warnings.push_back("skip pattern '" + pattern + "' matched no module");
  }
}

int module_bits(const std::string& path, const std::vector<std::string>& tied_paths,
                const UnifiedQuantizationConfig& config) {
  std::vector<std::string> names{path};
  names.insert(names.end(), tied_paths.begin(), tied_paths.end());
  std::vector<std::string> keys;
  for (const auto& [key, bits] : config.layer_bits) keys.push_back(key);
  std::optional<std::string> best;
  for (const auto& name : names) {
    if (bits_for_module(name, 1, {}, config.skip) == 0) return 0;
    const auto match = best_matching_pattern(keys, name);
    if (match && (!best || match->size() > best->size())) best = match;
  }
  const int bits = best ? config.layer_bits.at(*best) : config.effective_bits();
  return bits == 16 ? 0 : bits;
}

std::shared_ptr<Weight> quantize_module(const Backend& backend, const std::string& path,
                                        std::shared_ptr<Weight> weight, int bits,
                                        const UnifiedQuantizationConfig& config,
                                        QuantizationReport& report) {
  LayerQuantization layer;
  layer.path = path;
  layer.scheme = weight->describe();
  layer.parameters = weight->out_features() * weight->in_features();
  layer.bytes = weight->storage_bytes();
  if (bits == 0) {
    layer.note = "kept in float (layer_bits/skip)";
  } else if (auto quantized = backend.quantize(path, *weight, bits, config, layer.note)) {
    weight = std::move(quantized);
    layer.bits = bits;
    layer.scheme = weight->describe();
    layer.bytes = weight->storage_bytes();
  } else {
    report.warnings.push_back("'" + path + "' kept in float: " + layer.note);
  }
  report.layers.push_back(std::move(layer));
  return weight;
}

GridFor calibration_grids(const UnifiedQuantizationConfig& config, const std::string& backend) {
  return [&config, backend](const std::string& path, const Weight& weight,
                            std::string& note) -> std::unique_ptr<QuantGrid> {
    // Decoder linears, the only modules calibrated, have no tied aliases.
    const int bits = module_bits(path, {}, config);
    if (bits == 0) {
      note = "kept in float (layer_bits/skip)";
      return nullptr;
    }
    const auto* dense = dynamic_cast<const FloatWeight*>(&weight);
    if (dense == nullptr) {
      note = "already " + weight.describe();
      return nullptr;
    }
    return make_grid(backend, bits, config.group_size, weight.in_features(), dense->dtype(), note);
  };
}

CalibrationOptions calibration_options(const UnifiedQuantizationConfig& config) {
  return {config.method,
          config.calibration_data,
          config.calibration_samples,
          config.calibration_ctx,
          config.seed,
          config.act_order,
          config.device};
}

LayerQuantization calibrated_line(const CalibratedLayer& calibrated, int bits,
                                  const UnifiedQuantizationConfig& config) {
  LayerQuantization layer;
  layer.path = calibrated.path;
  layer.parameters = calibrated.weight->out_features() * calibrated.weight->in_features();
  layer.method = config.method;
  layer.bits = bits;
  layer.scheme = calibrated.weight->describe();
  layer.bytes = calibrated.weight->storage_bytes();
  layer.reconstruction_error = calibrated.reconstruction_error;
  layer.error_measure = calibrated.error_measure;
  layer.note = calibrated.note;
  return layer;
}

void note_round_to_nearest(const UnifiedQuantizationConfig& config,
                           const CalibratedLayer* calibrated, QuantizationReport& report) {
  LayerQuantization& layer = report.layers.back();
  if (config.method == "rtn" || layer.bits == 0) return;
  layer.note = calibrated != nullptr
                   ? "round-to-nearest: " + calibrated->note
                   : "round-to-nearest: calibration covers the decoder blocks' linears";
  report.not_calibrated.push_back(layer.path);
}

namespace {

// Runs the calibrated method over the decoder linears of `model` (in place):
// path -> what it did.
std::map<std::string, CalibratedLayer> calibrate(Model& model,
                                                 const UnifiedQuantizationConfig& config,
                                                 QuantizationReport& report) {
  std::map<std::string, CalibratedLayer> calibrated;
  const GridFor grids = calibration_grids(config, report.backend);
  report.calibration_device = calibration_device(model, calibration_options(config), grids);
  for (auto& layer : calibrate_model(model, calibration_options(config), grids)) {
    calibrated.emplace(layer.path, std::move(layer));
  }
  return calibrated;
}

// quanto's activation quantization of every quantized linear, its scales
// calibrated on the config's windows; the report shows the new schemes.
void calibrate_activations(Model& model, DType qtype, const UnifiedQuantizationConfig& config,
                           QuantizationReport& report) {
  std::vector<std::string> paths;
  for (const auto& layer : report.layers) {
    if (layer.bits != 0) paths.push_back(layer.path);
  }
  const CalibrationOptions options{"quanto activations",
                                   config.calibration_data,
                                   config.calibration_samples,
                                   config.calibration_ctx,
                                   config.seed,
                                   false};
  calibrate_quanto_activations(model, paths, qtype, load_windows(model, options));
  std::map<std::string, std::string> schemes;
  for (const auto& [path, weight] : model.named_weights()) schemes[path] = weight->describe();
  for (auto& layer : report.layers) layer.scheme = schemes.at(layer.path);
}

}  // namespace

std::int64_t QuantizationReport::quantized_parameters() const {
  std::int64_t total = 0;
  for (const auto& layer : layers) {
    if (layer.bits != 0) total += layer.parameters;
  }
  return total;
}

double QuantizationReport::bits_per_quantized_weight() const {
  std::size_t bytes = 0;
  for (const auto& layer : layers) {
    if (layer.bits != 0) bytes += layer.bytes;
  }
  const auto parameters = quantized_parameters();
  return parameters == 0 ? 0.0 : 8.0 * static_cast<double>(bytes) / static_cast<double>(parameters);
}

Quantizer::Quantizer(UnifiedQuantizationConfig config, QuantizationReport report)
    : config_(std::move(config)), report_(std::move(report)) {}

void Quantizer::save_model(const Model& model, const std::filesystem::path& dir) const {
  const auto encoder = find_backend(report_.backend)->encoder(model.config().dtype, config_);
  if (model.lora_parameters().empty()) {
    save_layout(model, dir, *encoder);
    return;
  }
  // The backend's layout holds the frozen weights; adapters are saved on their
  // own (save_adapters, `uq finetune`), so LoraWeights are unwrapped here.
  Model frozen(model);
  for (auto& slot : frozen.weight_slots()) {
    if (const auto* lora = dynamic_cast<const LoraWeight*>(slot.weight.get())) {
      slot.weight = std::const_pointer_cast<Weight>(lora->base());
    }
  }
  save_layout(frozen, dir, *encoder);
}

std::shared_ptr<Model> Quantizer::load_model(const std::filesystem::path& dir) const {
  return uq::load_model(dir);
}

std::pair<std::shared_ptr<Model>, Quantizer> quantize_model(
    const std::shared_ptr<const Model>& model, UnifiedQuantizationConfig config) {
  if (!model) fail("quantize_model: no model given");
  validate(config);
  const auto start = std::chrono::steady_clock::now();
  QuantizationReport report;
  apply_choice(resolve_backend(config), report);
  config.backend = report.backend;
  const Backend& backend = *find_backend(report.backend);
  auto quantized = std::make_shared<Model>(*model);
  warn_unmatched_patterns(config, all_module_paths(*quantized), report.warnings);
  std::map<std::string, CalibratedLayer> calibrated;
  if (config.method != "rtn") calibrated = calibrate(*quantized, config, report);
  auto slots = quantized->weight_slots();
  Progress progress("quantize", static_cast<std::int64_t>(slots.size()));
  for (auto& slot : slots) {
    throw_if_interrupted();
    progress.advance(0, slot.path);
    const int bits = module_bits(slot.path, slot.tied_paths, config);
    const auto found = calibrated.find(slot.path);
    if (bits != 0 && found != calibrated.end() && found->second.weight) {
      report.layers.push_back(calibrated_line(found->second, bits, config));
    } else {
      slot.weight = quantize_module(backend, slot.path, slot.weight, bits, config, report);
      note_round_to_nearest(config, found != calibrated.end() ? &found->second : nullptr, report);
    }
    progress.advance();
  }
  if (const auto qtype = activation_qtype(config.quanto_activations, "quanto_activations")) {
    calibrate_activations(*quantized, *qtype, config, report);
  }
  if (config.enable_lora) {
    // Fresh PEFT-initialised adapters (B = 0: the model's outputs are unchanged)
    // with alpha = 2·rank, ready for a training loop (model->lora_parameters()).
    LoraConfig lora;
    lora.rank = config.lora_rank;
    lora.alpha = 2.0 * config.lora_rank;
    attach_lora(*quantized, lora);
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {std::move(quantized), Quantizer(std::move(config), std::move(report))};
}

std::pair<std::shared_ptr<Model>, Quantizer> quantize_model(const std::filesystem::path& path,
                                                            UnifiedQuantizationConfig config) {
  validate(config);  // fail on bad options before reading a large model
  const auto too_large = config.memory_efficient ? std::nullopt : streaming_reason(path);
  if (!config.memory_efficient && !too_large) {
    return quantize_model(std::shared_ptr<const Model>(load_model(path)), std::move(config));
  }
  config.memory_efficient = true;
  auto result = quantize_model_streaming(path, std::move(config), too_large.value_or(""));
  if (result.second.config().enable_lora) {
    LoraConfig lora;
    lora.rank = result.second.config().lora_rank;
    lora.alpha = 2.0 * result.second.config().lora_rank;
    attach_lora(*result.first, lora);
  }
  return result;
}

}  // namespace uq
