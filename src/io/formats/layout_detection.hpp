#pragma once
// Which file layout a model directory is in, decided from config.json and the
// checkpoint's tensors, and the weight factory that reads it. Each layout's
// reader is tried in turn; plain Hugging Face float weights are the fallback.
#include <string>

#include "io/hf_config.hpp"
#include "model/tensor_source.hpp"

namespace uq {

// Throws uq::Error (naming `origin`) when a layout is recognised but malformed.
WeightFactory weight_factory_for(const ModelConfig& config, const TensorSource& tensors,
                                 const std::string& origin);

}  // namespace uq
