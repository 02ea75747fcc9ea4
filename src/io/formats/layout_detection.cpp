#include "io/formats/layout_detection.hpp"

#include "io/formats/bnb_layout.hpp"
#include "io/formats/custom_layout.hpp"
#include "io/formats/mlx_layout.hpp"
#include "io/formats/quanto_layout.hpp"

namespace uq {

WeightFactory weight_factory_for(const ModelConfig& config, const TensorSource& tensors,
                                 const std::string& origin) {
  if (const auto quantization = mlx_quantization_of(config.raw, origin)) {
    return mlx_weights(tensors, *quantization);
  }
  if (const auto quantization = bnb_quantization_of(config.raw, origin)) {
    return bnb_weights(tensors, *quantization);
  }
  if (is_custom_layout(config.raw)) return custom_weights(tensors, config);
  // quanto's state-dict keys describe each module; plain float checkpoints
  // read through it unchanged.
  return quanto_weights(tensors, config);
}

}  // namespace uq
