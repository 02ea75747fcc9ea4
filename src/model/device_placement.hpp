#pragma once
// Where a model runs (--device): "cpu" runs the loaded Model itself; "cuda" uploads it to the
// GPU (kernels/cuda/cuda_model.hpp); "auto" takes the GPU when this build has CUDA, a GPU is
// present and every weight has a CUDA kernel, else the CPU.
#include <memory>
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

}  // namespace uq
