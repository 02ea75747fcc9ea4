#include "train/lora_attach.hpp"

#include <random>

#include "core/error.hpp"
#include "model/decoder.hpp"
#include "quant/layer_pattern.hpp"
#include "train/adapter_io.hpp"
#include "train/lora_weight.hpp"

namespace uq {
namespace {

bool is_projection(const std::string& path) {
  return path.rfind("model.layers.", 0) == 0;
}

void reject_existing_adapters(const Model& model) {
  for (const auto& [path, weight] : model.named_weights()) {
    if (dynamic_cast<const LoraWeight*>(weight.get())) {
      fail("module '", path, "' already has a LoRA adapter");
    }
  }
}

}  // namespace

std::vector<NamedLoraAdapter> attach_lora(Model& model, const LoraConfig& config,
                                          std::uint64_t seed) {
  validate(config);
  reject_existing_adapters(model);
  std::vector<bool> pattern_used(config.target_modules.size(), false);
  std::mt19937_64 rng(seed);
  std::vector<std::shared_ptr<Weight>*> selected_slots;
  std::vector<NamedLoraAdapter> attached;
  for (auto& slot : model.weight_slots()) {
    if (!is_projection(slot.path)) continue;
    bool selected = false;
    for (std::size_t i = 0; i < config.target_modules.size(); ++i) {
      if (pattern_matches(config.target_modules[i], slot.path)) {
        selected = true;
        pattern_used[i] = true;
      }
    }
    if (!selected) continue;
    std::shared_ptr<const Weight> base = slot.weight;
    auto adapter = std::make_shared<LoraAdapter>(
        make_lora_adapter(base->in_features(), base->out_features(), config, rng));
    selected_slots.push_back(&slot.weight);
    attached.push_back({slot.path, adapter, base});
  }
  for (std::size_t i = 0; i < config.target_modules.size(); ++i) {
    if (!pattern_used[i]) {
      fail("LoRA target module '", config.target_modules[i], "' matches no decoder projection");
    }
  }
  // Only once every pattern matched: a failed attach leaves the model unchanged.
  for (std::size_t i = 0; i < attached.size(); ++i) {
    *selected_slots[i] = std::make_shared<LoraWeight>(attached[i].base, attached[i].adapter);
  }
  return attached;
}

void attach_adapters(Model& model, const std::map<std::string, LoraAdapter>& adapters) {
  reject_existing_adapters(model);
  std::map<std::string, bool> found;
  for (const auto& entry : adapters) found[entry.first] = false;
  std::vector<std::pair<std::shared_ptr<Weight>*, std::shared_ptr<Weight>>> replacements;
  for (auto& slot : model.weight_slots()) {
    const auto it = adapters.find(slot.path);
    if (it == adapters.end()) continue;
    if (!is_projection(slot.path)) fail("LoRA adapter for '", slot.path, "': not supported there");
    found[slot.path] = true;
    try {
      replacements.emplace_back(
          &slot.weight,
          std::make_shared<LoraWeight>(slot.weight, std::make_shared<LoraAdapter>(it->second)));
    } catch (const Error& error) {
      fail("LoRA adapter for '", slot.path, "': ", error.what());
    }
  }
  for (const auto& [path, seen] : found) {
    if (!seen) fail("LoRA adapter for '", path, "': the model has no such module");
  }
  // Only once every adapter fits: a failed attach leaves the model unchanged.
  for (auto& [slot, weight] : replacements) *slot = std::move(weight);
}

void attach_adapter_directory(Model& model, const std::filesystem::path& dir) {
  const AdapterSet set = load_adapters(dir);
  try {
    attach_adapters(model, set.adapters);
  } catch (const Error& error) {
    fail(dir.string(), ": ", error.what());
  }
}

std::vector<NamedLoraAdapter> lora_adapters(const Model& model) {
  std::vector<NamedLoraAdapter> found;
  for (const auto& [path, weight] : model.named_weights()) {
    if (const auto* lora = dynamic_cast<const LoraWeight*>(weight.get())) {
      found.push_back({path, lora->adapter(), lora->base()});
    }
  }
  return found;
}

std::vector<NamedLoraAdapter> Model::lora_parameters() const {
  return lora_adapters(*this);
}

}  // namespace uq
