#include "api/backend_registry.hpp"

namespace uq {

const std::vector<BackendSpec>& backend_specs() {
  static const std::vector<BackendSpec> specs{
      {"mlx",
       "affine per group: w = scale*q + bias (scale, bias in the model dtype)",
       {1, 2, 3, 4, 5, 6, 7, 8},
       {32, 64, 128},
       "mlx-lm",
       true},
      {"quanto",
       "int8/fp8 symmetric per channel; int2/int4 affine per group",
       {2, 4, 8},
       {128},
       "optimum-quanto",
       false},
      {"bnb", "NF4/FP4 blockwise absmax; LLM.int8 row-wise", {4, 8}, {64}, "bitsandbytes", false},
      {"custom", "symmetric int4/int8 per output channel", {4, 8}, {}, "native", false},
  };
  return specs;
}

const BackendSpec* find_backend(std::string_view name) {
  if (name == "mps") name = "custom";
  for (const auto& spec : backend_specs()) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

std::string known_backend_names() {
  return "mlx, quanto, bnb, custom (alias mps), auto";
}

}  // namespace uq
