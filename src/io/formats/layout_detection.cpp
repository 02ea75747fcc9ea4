#include "io/formats/layout_detection.hpp"

#include "io/formats/mlx_layout.hpp"

namespace uq {

WeightFactory weight_factory_for(const ModelConfig& config, const TensorSource& tensors,
                                 const std::string& origin) {
  if (const auto quantization = mlx_quantization_of(config.raw, origin)) {
    return mlx_weights(tensors, *quantization);
  }
  return float_weights(tensors);
}

}  // namespace uq
