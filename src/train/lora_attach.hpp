#pragma once
// Putting LoRA adapters into a model's linear slots (as LoraWeight) and
// finding them again.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "train/lora_adapter.hpp"

namespace uq {

class Model;
class Weight;

// An adapter attached to the module at `path` (HF module path), with the
// frozen weight it adapts.
struct NamedLoraAdapter {
  std::string path;
  std::shared_ptr<LoraAdapter> adapter;
  std::shared_ptr<const Weight> base;
};

// Attaches fresh adapters (PEFT init, A drawn from `seed`) to every decoder
// projection matching one of config.target_modules, in model order. Throws
// uq::Error for an invalid config, a pattern that matches no projection, or a
// model that already has adapters.
std::vector<NamedLoraAdapter> attach_lora(Model& model, const LoraConfig& config,
                                          std::uint64_t seed = 0);

// Attaches loaded adapters by module path. Throws uq::Error naming a path that
// is not a decoder projection or an adapter whose shape does not fit.
void attach_adapters(Model& model, const std::map<std::string, LoraAdapter>& adapters);

// Loads the adapter directory `dir` (PEFT or mlx-lm layout) and attaches it.
void attach_adapter_directory(Model& model, const std::filesystem::path& dir);

// The adapters attached to `model`, in model order (what Model::lora_parameters returns).
std::vector<NamedLoraAdapter> lora_adapters(const Model& model);

}  // namespace uq
