#include "io/formats/gguf_recipe.hpp"

#include <array>
#include <cctype>
#include <regex>

namespace uq {
namespace {

struct RecipeEntry {
  std::string_view name;
  GgmlType base;
  bool q4_k_m;
  std::uint32_t file_type;  // llama_ftype
};

constexpr std::array<RecipeEntry, 10> kRecipes{{
    {"F32", GgmlType::F32, false, 0},
    {"F16", GgmlType::F16, false, 1},
    {"BF16", GgmlType::BF16, false, 32},
    {"Q8_0", GgmlType::Q8_0, false, 7},
    {"Q4_0", GgmlType::Q4_0, false, 2},
    {"Q4_1", GgmlType::Q4_1, false, 3},
    {"Q5_0", GgmlType::Q5_0, false, 8},
    {"Q6_K", GgmlType::Q6_K, false, 18},
    {"Q4_K", GgmlType::Q4_K, false, 14},  // llama.cpp's closest ftype: Q4_K_S
    {"Q4_K_M", GgmlType::Q4_K, true, 15},
}};

// llama.cpp's use_more_bits: the first and last eighth of the layers and
// every third layer in between get more bits.
bool use_more_bits(std::int64_t layer, std::int64_t layers) {
  return layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;
}

GgmlType fit_row(GgmlType type, std::int64_t row_length) {
  if (row_length % ggml_block_size(type) == 0) return type;
  if (type == GgmlType::Q4_K) type = GgmlType::Q5_0;
  if (type == GgmlType::Q6_K) type = GgmlType::Q8_0;
  return row_length % ggml_block_size(type) == 0 ? type : GgmlType::F16;
}

}  // namespace

std::optional<GgufRecipe> parse_gguf_recipe(std::string_view name) {
  std::string upper(name);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const auto& entry : kRecipes) {
    if (entry.name == upper) return GgufRecipe{upper, entry.base, entry.q4_k_m};
  }
  return std::nullopt;
}

std::string gguf_recipe_names() {
  std::string names;
  for (const auto& entry : kRecipes) {
    if (!names.empty()) names += ", ";
    names += entry.name;
  }
  return names;
}

GgmlType gguf_tensor_type(const GgufRecipe& recipe, const std::string& gguf_module,
                          std::int64_t layers, std::int64_t row_length) {
  GgmlType type = recipe.base;
  if (recipe.q4_k_m) {
    static const std::regex layer_module(R"(blk\.(\d+)\.(attn_v|ffn_down))");
    std::smatch match;
    if (gguf_module == "output") {
      type = GgmlType::Q6_K;
    } else if (std::regex_match(gguf_module, match, layer_module) &&
               use_more_bits(std::stoll(match[1].str()), layers)) {
      type = GgmlType::Q6_K;
    }
  }
  return fit_row(type, row_length);
}

std::uint32_t gguf_file_type(const GgufRecipe& recipe) {
  for (const auto& entry : kRecipes) {
    if (entry.name == recipe.name) return entry.file_type;
  }
  return 0;
}

}  // namespace uq
