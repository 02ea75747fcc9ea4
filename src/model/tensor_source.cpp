#include "model/tensor_source.hpp"

#include "model/float_weight.hpp"

namespace uq {

TensorSource checkpoint_tensors(const Checkpoint& checkpoint) {
  return TensorSource{[&checkpoint](const std::string& name) { return checkpoint.contains(name); },
                      [&checkpoint](const std::string& name) { return checkpoint.tensor(name); }};
}

WeightFactory float_weights(const TensorSource& tensors) {
  return [tensors](const std::string& module_path) -> std::shared_ptr<Weight> {
    return FloatWeight::from_tensor(tensors.tensor(module_path + ".weight"));
  };
}

}  // namespace uq
