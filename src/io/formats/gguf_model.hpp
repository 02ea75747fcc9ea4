#pragma once
// A Llama-family model as one GGUF file, both ways. Export writes every
// matrix in the recipe's ggml types (quantizing from float32: a quantized
// model is dequantized first), norms in F32, the llama.* hyper-parameters and
// the tokenizer, with the tensor names and q/k row order llama.cpp uses.
// Import reads such a file (ours or llama.cpp's) into a Model whose matrices
// keep their ggml types (GgmlWeight) and whose tokenizer comes from the
// tokenizer.ggml.* metadata.
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/formats/gguf_recipe.hpp"

namespace uq {

class Model;

struct GgufExportedTensor {
  std::string name;  // GGUF name
  GgmlType type;
  std::string source;  // the model's weight as it was: "bf16", "affine b4 g64", ...
};

struct GgufExportReport {
  std::vector<GgufExportedTensor> tensors;
  bool dequantized = false;  // some source weights were quantized
  std::size_t file_bytes = 0;
};

// Writes `model` to `path` atomically. `log` receives one line per notable
// step (e.g. that quantized weights are dequantized first); may be empty.
// Throws uq::Error naming what the GGUF llama architecture cannot hold.
GgufExportReport export_gguf(const Model& model, const std::filesystem::path& path,
                             const GgufRecipe& recipe,
                             const std::function<void(const std::string&)>& log = {});

// Loads a llama GGUF file; throws uq::Error naming the file and the field or
// tensor at fault.
std::shared_ptr<Model> load_gguf_model(const std::filesystem::path& path);

}  // namespace uq
