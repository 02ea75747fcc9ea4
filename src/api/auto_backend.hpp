#pragma once
// `backend: auto` / `device: auto`: the one rule table that picks the
// backend and the device from the request and the hardware. The rules, first
// match wins (README's backend table lists the same):
//   1. activation quantization or float8 weights requested -> quanto (only
//      quanto's format holds them);
//   2. a calibrated method (gptq, awq, hqq)                  -> mlx (they produce
//      group-wise affine codes, which mlx's layout holds at every bit width);
//   3. LoRA at 4 bits                                        -> bnb (QLoRA's NF4
//      with double quantization, the layout PEFT users load);
//   4. anything else                                         -> mlx (group-wise
//      affine: every bit width 1-8 and the fastest CPU and CUDA kernels).
// Device (when `auto`): cuda when a usable GPU exists (every backend's weights
// have CUDA kernels), else cpu. An explicit backend or device is kept as
// requested.
#include <string>

#include "api/config.hpp"

namespace uq {

struct AutoRequest {
  std::string backend = "auto";  // as requested: a name or "auto"
  std::string device = "auto";   // cpu | cuda | auto
  int bits = 4;
  std::string method = "rtn";
  bool lora = false;
  bool quantized_activations = false;
  bool float8_weights = false;
  bool gpu_available = false;  // a CUDA device this build can use
};

struct AutoChoice {
  std::string backend;
  std::string device;
  std::string reason;  // which rule chose them and why, or "requested"
};

AutoChoice choose_backend(const AutoRequest& request);

// The request that `config` makes on this machine (a usable GPU: cuda_available()).
AutoRequest auto_request(const UnifiedQuantizationConfig& config);

}  // namespace uq
