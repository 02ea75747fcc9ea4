#include "api/config.hpp"

#include <algorithm>

#include "api/auto_backend.hpp"
#include "api/backend.hpp"
#include "core/error.hpp"
#include "quant/layer_pattern.hpp"
#include "quant/quanto_activations.hpp"

namespace uq {
namespace {

std::string join(const std::vector<int>& values) {
  std::string text;
  for (const int value : values) text += (text.empty() ? "" : ", ") + std::to_string(value);
  return text;
}

bool contains(const std::vector<int>& values, int value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

}  // namespace

void validate(UnifiedQuantizationConfig& config) {
  if (config.backend == "mps") config.backend = "custom";
  if (config.backend != "auto") {
    if (find_backend(config.backend) == nullptr) {
      fail("unknown backend '", config.backend, "' (known: ", known_backend_names(), ")");
    }
  }
  const int bits = config.effective_bits();
  if (bits < 1 || bits > 8) fail("bits ", bits, " is out of range (1-8)");
  for (const auto& [pattern, layer_bits] : config.layer_bits) {
    if (pattern.empty()) fail("layer_bits: empty pattern");
    if (layer_bits != 0 && layer_bits != 16 && (layer_bits < 1 || layer_bits > 8)) {
      fail("layer_bits '", pattern, "'=", layer_bits, " is out of range (1-8, or 0/16 for float)");
    }
    pattern_matches(pattern, "");  // rejects an invalid re: expression early
  }
  for (const auto& pattern : config.skip) pattern_matches(pattern, "");
  const BackendSpec* spec = &find_backend(choose_backend(auto_request(config)).backend)->spec();
  const auto check_bits = [&](int value, const std::string& what) {
    if (!contains(spec->bits, value)) {
      fail(what, " ", value, " is not supported by backend '", spec->name,
           "' (supported: ", join(spec->bits), ")");
    }
  };
  check_bits(bits, "bits");
  for (const auto& [pattern, layer_bits] : config.layer_bits) {
    if (layer_bits != 0 && layer_bits != 16) check_bits(layer_bits, "layer_bits '" + pattern + "'");
  }
  if (!spec->group_sizes.empty() && !contains(spec->group_sizes, config.group_size)) {
    fail("group size ", config.group_size, " is not supported by backend '", spec->name,
         "' (supported: ", join(spec->group_sizes), ")");
  }
  if (config.bnb_4bit_quant_type != "nf4" && config.bnb_4bit_quant_type != "fp4") {
    fail("bnb_4bit_quant_type '", config.bnb_4bit_quant_type, "' is unknown (known: nf4, fp4)");
  }
  static const std::vector<std::string> methods{"rtn", "gptq", "awq", "hqq"};
  if (std::find(methods.begin(), methods.end(), config.method) == methods.end()) {
    fail("unknown method '", config.method, "' (known: rtn, gptq, awq, hqq)");
  }
  if (config.method != "rtn" && spec->name == "bnb") {
    fail("method '", config.method,
         "' needs a group-wise integer format; backend 'bnb' stores nf4/fp4 codebooks (use rtn)");
  }
  if (config.method == "hqq" && spec->name == "custom") {
    fail("method 'hqq' refines zero points; backend 'custom' is symmetric (use gptq or awq)");
  }
  if ((config.method == "gptq" || config.method == "awq") && config.calibration_data.empty()) {
    fail("method '", config.method, "' needs calibration_data (--calibration-data FILE)");
  }
  if (config.calibration_samples < 1) {
    fail("calibration_samples ", config.calibration_samples, " must be at least 1");
  }
  if (config.calibration_ctx < 1) {
    fail("calibration_ctx ", config.calibration_ctx, " must be at least 1");
  }
  if (config.chunk_size < 1) fail("chunk_size ", config.chunk_size, " must be at least 1");
  if (config.lora_rank < 1) fail("lora_rank ", config.lora_rank, " must be at least 1");
  if (config.quanto_weights != "qint" && config.quanto_weights != "qfloat8" &&
      config.quanto_weights != "qfloat8_e4m3fn" && config.quanto_weights != "qfloat8_e5m2") {
    fail("quanto_weights '", config.quanto_weights,
         "' is unknown (known: qint, qfloat8, qfloat8_e4m3fn, qfloat8_e5m2)");
  }
  activation_qtype(config.quanto_activations, "quanto_activations");
  const bool quanto_options =
      config.quanto_weights != "qint" || config.quanto_activations != "none";
  if (quanto_options && spec->name != "quanto") {
    fail("quanto_weights/quanto_activations need backend 'quanto', not '", spec->name, "'");
  }
  if (config.quanto_weights != "qint" && bits != 8) {
    fail("quanto_weights '", config.quanto_weights, "' stores 8-bit floats; bits is ", bits);
  }
  if (config.quanto_weights != "qint" && !config.layer_bits.empty()) {
    fail("quanto_weights '", config.quanto_weights,
         "': layer_bits would mix integer qtypes in (use skip to keep modules float)");
  }
  if (config.quanto_activations != "none") {
    if (config.calibration_data.empty()) {
      fail("quanto_activations '", config.quanto_activations,
           "' needs calibration_data (--calibration-data FILE) for the activation scales");
    }
    if (config.memory_efficient) {
      fail("quanto_activations: calibration runs the loaded model; memory_efficient streams it");
    }
    if (config.method != "rtn") {
      fail("quanto_activations: quanto's weights are round-to-nearest; method ", config.method,
           " is not supported with it");
    }
  }
  if (config.device != "auto" && config.device != "cpu" && config.device != "cuda") {
    fail("unknown device '", config.device, "' (known: cpu, cuda, auto)");
  }
}

}  // namespace uq
