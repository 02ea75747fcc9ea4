#include "io/formats/layout_detection.hpp"

#include <filesystem>
#include <fstream>

#include "core/error.hpp"

#include "io/formats/bnb_layout.hpp"
#include "io/formats/custom_layout.hpp"
#include "io/formats/mlx_layout.hpp"
#include "io/formats/quanto_layout.hpp"

namespace uq {
namespace {

// quantization_map.json beside config.json (`config_path`), or null.
nlohmann::json quanto_map_beside(const std::string& config_path) {
  const auto path = std::filesystem::path(config_path).parent_path() / "quantization_map.json";
  std::ifstream file(path);
  if (!file) return nullptr;
  try {
    return nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& error) {
    fail(path.string(), ": not valid JSON (", error.what(), ")");
  }
}

}  // namespace

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
  return quanto_weights(tensors, config, quanto_map_beside(origin));
}

}  // namespace uq
