#pragma once
// UnifiedQuantizationConfig: everything quantize_model needs to know, with the
// names of the migration guide (DESIGN.md §1).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace uq {

struct UnifiedQuantizationConfig {
  int bits = 4;                  // the guide's `bits`; default_bits overrides it when set
  std::string backend = "auto";  // mlx | quanto | bnb | custom (alias mps) | auto
  int default_bits = 0;          // 0: use `bits`
  int group_size = 64;           // elements sharing one scale/bias
  std::map<std::string, int> layer_bits = {};  // pattern -> bits (0 or 16: keep float)
  std::vector<std::string> skip = {};          // patterns kept in float
  std::string method = "rtn";                  // rtn | gptq | awq | hqq
  std::string calibration_data = {};           // text file for gptq / awq
  int calibration_samples = 128;               // windows drawn from it
  std::int64_t calibration_ctx = 256;          // tokens per window
  std::uint64_t seed = 0;                      // picks the windows
  bool act_order = false;                      // gptq: columns by decreasing activation energy
  // Stream matrices from the checkpoint on disk instead of loading the float
  // model (quantize_model(path) also does so when the model would not fit).
  bool memory_efficient = false;
  std::int64_t chunk_size = 256;  // rows per streamed chunk (row-independent formats)
  bool enable_lora = false;
  int lora_rank = 16;
  std::string device = "auto";  // cpu | cuda | auto
  // bnb 4-bit only: "nf4" | "fp4", and whether the absmax is double quantized.
  std::string bnb_4bit_quant_type = "nf4";
  bool bnb_4bit_use_double_quant = true;
  // quanto only (quanto's quantize(weights=..., activations=...)): "qint" is
  // the integer qtype of `bits`; "qfloat8" (= "qfloat8_e4m3fn") and
  // "qfloat8_e5m2" store float8 weights (bits 8).
  std::string quanto_weights = "qint";
  // quanto only: "none", "qint8", "qfloat8" (= "qfloat8_e4m3fn") or
  // "qfloat8_e5m2"; the per-tensor input/output scales are calibrated on
  // calibration_data (calibration_samples windows of calibration_ctx tokens).
  std::string quanto_activations = "none";

  int effective_bits() const { return default_bits != 0 ? default_bits : bits; }
};

// Throws uq::Error naming the first option that is out of range or
// inconsistent (bits, group_size, layer_bits values, backend, method, ...).
// Resolves the alias "mps" to "custom".
void validate(UnifiedQuantizationConfig& config);

}  // namespace uq
