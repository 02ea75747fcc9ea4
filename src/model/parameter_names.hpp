#pragma once
// The parameters a Llama-family checkpoint holds for a config, in the order
// Model keeps them (weight_slots() and named_vectors()), without loading it:
// streaming quantization walks a checkpoint tensor by tensor with these.
#include <cstdint>
#include <string>
#include <vector>

#include "io/hf_config.hpp"

namespace uq {

struct ModuleShape {
  std::string path;  // "model.layers.0.self_attn.q_proj"; its tensor is path + ".weight"
  std::int64_t out_features = 0;
  std::int64_t in_features = 0;
  std::vector<std::string> tied_paths;  // "lm_head" on a tied embedding
};

struct VectorShape {
  std::string name;  // the tensor name ("model.norm.weight", "...q_proj.bias")
  std::int64_t size = 0;
};

std::vector<ModuleShape> module_shapes(const ModelConfig& config);
std::vector<VectorShape> vector_shapes(const ModelConfig& config);

}  // namespace uq
