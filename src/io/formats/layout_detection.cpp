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

// The parsed quantization_map.json at `path`, or null when there is none.
nlohmann::json read_quanto_map(const std::filesystem::path& path) {
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
  const auto map_path = std::filesystem::path(origin).parent_path() / "quantization_map.json";
  return quanto_weights(tensors, config, read_quanto_map(map_path), map_path.string());
}

}  // namespace uq
