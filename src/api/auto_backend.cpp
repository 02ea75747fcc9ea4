#include "api/auto_backend.hpp"

#include "model/device_placement.hpp"

namespace uq {
namespace {

struct BackendRule {
  std::string backend;
  std::string why;
};

BackendRule backend_rule(const AutoRequest& request) {
  if (request.quantized_activations) {
    return {"quanto", "activation quantization is quanto's (calibrated input/output scales)"};
  }
  if (request.float8_weights) return {"quanto", "float8 weights are quanto's qfloat8"};
  if (request.method != "rtn") {
    return {"mlx", "method " + request.method +
                       " produces group-wise affine codes, which mlx holds at every bit width"};
  }
  if (request.lora && request.bits == 4) {
    return {"bnb", "LoRA at 4 bits: QLoRA's NF4 with double quantization (bitsandbytes layout)"};
  }
  return {"mlx",
          "group-wise affine serves every bit width 1-8 with the fastest CPU and CUDA "
          "kernels"};
}

}  // namespace

AutoChoice choose_backend(const AutoRequest& request) {
  AutoChoice choice;
  std::string reason;
  if (request.backend == "auto") {
    const BackendRule rule = backend_rule(request);
    choice.backend = rule.backend;
    reason = "auto: " + rule.backend + " (" + rule.why + ")";
  } else {
    choice.backend = request.backend;
    reason = "requested";
  }
  if (request.device != "auto") {
    choice.device = request.device;
  } else if (!request.gpu_available) {
    choice.device = "cpu";
    reason += "; device cpu (no usable GPU)";
  } else {  // every backend's weights run on the CUDA kernels
    choice.device = "cuda";
    reason += "; device cuda (usable GPU)";
  }
  choice.reason = reason;
  return choice;
}

AutoRequest auto_request(const UnifiedQuantizationConfig& config) {
  AutoRequest request;
  request.backend = config.backend;
  request.device = config.device;
  request.bits = config.effective_bits();
  request.method = config.method;
  request.lora = config.enable_lora;
  request.quantized_activations = config.quanto_activations != "none";
  request.float8_weights = config.quanto_weights != "qint";
  request.gpu_available = cuda_available();
  return request;
}

}  // namespace uq
