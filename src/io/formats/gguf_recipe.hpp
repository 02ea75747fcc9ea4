#pragma once
// Which ggml type each tensor gets when a model is exported to GGUF: one type
// for every matrix ("Q8_0", "Q4_K", "F16", ...), or llama.cpp's mixed
// "Q4_K_M" (Q4_K, with Q6_K for the output matrix and for attn_v / ffn_down
// on the layers llama.cpp's use_more_bits picks). Norm vectors stay F32.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "quant/ggml_blocks.hpp"

namespace uq {

struct GgufRecipe {
  std::string name;  // as given on the command line, canonical case
  GgmlType base = GgmlType::Q8_0;
  bool q4_k_m = false;
};

// Nullopt for names other than F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q6_K Q4_K Q4_K_M.
std::optional<GgufRecipe> parse_gguf_recipe(std::string_view name);
// The names parse_gguf_recipe accepts, for messages: "F32, F16, ...".
std::string gguf_recipe_names();

// The type of matrix `gguf_module` ("blk.3.ffn_down", "output", ...) whose rows
// have `row_length` elements, in a model of `layers` blocks. Like llama.cpp,
// a K-quant that does not tile the row falls back (Q4_K -> Q5_0, Q6_K ->
// Q8_0) and a 32-block type that does not tile it falls back to F16.
GgmlType gguf_tensor_type(const GgufRecipe& recipe, const std::string& gguf_module,
                          std::int64_t layers, std::int64_t row_length);

// general.file_type: llama.cpp's llama_ftype code for the recipe.
std::uint32_t gguf_file_type(const GgufRecipe& recipe);

}  // namespace uq
