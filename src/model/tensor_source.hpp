#pragma once
// Where a model's parameters come from: a lookup of tensors by their Hugging
// Face name (a checkpoint, or a quantized layout that maps names itself).
#include <functional>
#include <memory>
#include <string>

#include "io/safetensors.hpp"
#include "model/weight.hpp"

namespace uq {

struct TensorSource {
  std::function<bool(const std::string& name)> contains;
  // Throws uq::Error naming the tensor when absent.
  std::function<TensorView(const std::string& name)> tensor;
};

// Looks tensors up in `checkpoint`, which must outlive the source.
TensorSource checkpoint_tensors(const Checkpoint& checkpoint);

// Builds the weight of one linear/embedding module from its HF module path
// ("model.layers.3.self_attn.q_proj", "model.embed_tokens", "lm_head").
using WeightFactory = std::function<std::shared_ptr<Weight>(const std::string& module_path)>;

// Reads "<module_path>.weight" from `tensors` into a FloatWeight in its stored dtype.
WeightFactory float_weights(const TensorSource& tensors);

}  // namespace uq
