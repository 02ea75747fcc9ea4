#pragma once
// Where a model runs (--device): "cpu" runs the loaded Model itself; "cuda" uploads it to the
// GPU (kernels/cuda/cuda_model.hpp); "auto" takes the GPU when this build has CUDA, a GPU is
// present and every weight has a CUDA kernel, else the CPU.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "model/causal_lm.hpp"

namespace uq {

class Model;

// True when this build has CUDA and at least one GPU is usable.
bool cuda_available();

// Throws uq::Error naming --device for an unknown name, or "cuda" where the build has no CUDA
// or no GPU is present.
void check_device_option(const std::string& device);

struct PlacedModel {
  std::shared_ptr<const CausalLM> model;
  std::string device;  // "cpu" or "cuda"
};

// Throws uq::Error as check_device_option does, or naming a layer with no CUDA kernel when
// "cuda" was asked for.
PlacedModel place_model(std::shared_ptr<const Model> model, const std::string& device);

// Why `model` cannot run on `device`, or nothing when it can. "cuda": no CUDA in this build, no
// GPU, or the first layer whose format has no CUDA kernel (cuda::cuda_unsupported_reason);
// "cpu" and "auto" always can. Throws uq::Error for an unknown device name.
std::optional<std::string> device_unsupported_reason(const Model& model, const std::string& device);

// Bytes in use on the current GPU as the driver reports them (cudaMemGetInfo: total - free,
// every process's allocations and this process's CUDA context included); 0 without CUDA or GPU.
std::int64_t cuda_memory_used_bytes();

}  // namespace uq
