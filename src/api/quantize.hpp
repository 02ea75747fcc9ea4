#pragma once
// quantize_model and Quantizer: the one call of DESIGN.md §1.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "api/config.hpp"

namespace uq {

class Model;

// What happened to one module.
struct LayerQuantization {
  std::string path;
  std::string scheme;           // "affine b4 g64", or the float dtype when kept
  int bits = 0;                 // 0: kept in float
  std::int64_t parameters = 0;  // out * in
  std::size_t bytes = 0;        // storage after quantization
  std::string note;             // why it stayed float, when it did
  std::string method = "rtn";   // how the codes were chosen: rtn | gptq | awq | hqq
  // Relative error of the calibrated layer (-1: not measured): "output" is
  // ‖(W - Ŵ)X‖² / ‖WX‖² over the calibration inputs, "weight" ‖W - Ŵ‖² / ‖W‖².
  double reconstruction_error = -1.0;
  std::string error_measure;
};

struct QuantizationReport {
  std::string backend;
  std::string backend_reason;      // why `auto` chose it (and the device), or "requested"
  std::string device;              // cpu | cuda: where `auto` (or the request) puts the model
  std::string calibration_device;  // cpu | cuda: where GPTQ/AWQ/HQQ ran; empty for rtn
  std::vector<LayerQuantization> layers;
  std::vector<std::string> warnings;  // e.g. a layer pattern that matched nothing
  // Quantized modules the calibrated method did not cover (round-to-nearest instead).
  std::vector<std::string> not_calibrated;
  double seconds = 0.0;

  std::int64_t quantized_parameters() const;
  // Storage bits per quantized weight (codes + scales + biases).
  double bits_per_quantized_weight() const;
};

class Quantizer {
 public:
  Quantizer(UnifiedQuantizationConfig config, QuantizationReport report);

  const UnifiedQuantizationConfig& config() const { return config_; }
  const QuantizationReport& report() const { return report_; }

  // Saves in the backend's native layout (mlx: the mlx-lm directory), atomically.
  void save_model(const Model& model, const std::filesystem::path& dir) const;
  // Loads a directory written by save_model (or by the backend's own tools).
  std::shared_ptr<Model> load_model(const std::filesystem::path& dir) const;

 private:
  UnifiedQuantizationConfig config_;
  QuantizationReport report_;
};

// Quantizes a copy of `model` (the original is untouched; weights not
// quantized are shared). Throws uq::Error for an invalid config.
std::pair<std::shared_ptr<Model>, Quantizer> quantize_model(
    const std::shared_ptr<const Model>& model, UnifiedQuantizationConfig config);
// Loads the Hugging Face directory at `path`, then quantizes it.
std::pair<std::shared_ptr<Model>, Quantizer> quantize_model(const std::filesystem::path& path,
                                                            UnifiedQuantizationConfig config);

}  // namespace uq
