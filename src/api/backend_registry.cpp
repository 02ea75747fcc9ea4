#include "api/backend.hpp"

#include "api/backends/bnb_backend.hpp"
#include "api/backends/custom_backend.hpp"
#include "api/backends/mlx_backend.hpp"
#include "api/backends/quanto_backend.hpp"

namespace uq {

const std::vector<std::unique_ptr<Backend>>& backends() {
  static const std::vector<std::unique_ptr<Backend>> all = [] {
    std::vector<std::unique_ptr<Backend>> list;
    list.push_back(std::make_unique<MlxBackend>());
    list.push_back(std::make_unique<QuantoBackend>());
    list.push_back(std::make_unique<BnbBackend>());
    list.push_back(std::make_unique<CustomBackend>());
    return list;
  }();
  return all;
}

const Backend* find_backend(std::string_view name) {
  if (name == "mps") name = "custom";
  for (const auto& backend : backends()) {
    if (backend->spec().name == name) return backend.get();
  }
  return nullptr;
}

std::string known_backend_names() {
  std::string names;
  for (const auto& backend : backends()) {
    names += backend->spec().name;
    if (backend->spec().name == "custom") names += " (alias mps)";
    names += ", ";
  }
  return names + "auto";
}

}  // namespace uq
