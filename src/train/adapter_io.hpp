#pragma once
// LoRA adapters on disk, in the two layouts other tools read and write:
//  - PEFT: adapter_model.safetensors with base_model.model.<path>.lora_A.weight
//    [r, in] and .lora_B.weight [out, r]; adapter_config.json with r,
//    lora_alpha, target_modules, peft_type "LORA".
//  - mlx-lm: adapters.safetensors with <path>.lora_a [in, r] and .lora_b
//    [r, out]; adapter_config.json with lora_parameters {rank, scale, dropout}.
#include <filesystem>
#include <map>
#include <string>

#include "train/lora_adapter.hpp"

namespace uq {

enum class AdapterFormat { Peft, MlxLm };

// "peft" or "mlx"; throws uq::Error naming the option otherwise.
AdapterFormat parse_adapter_format(const std::string& name);

struct AdapterSet {
  LoraConfig config;                            // rank, alpha, dropout, target modules
  std::map<std::string, LoraAdapter> adapters;  // by HF module path
  AdapterFormat format = AdapterFormat::Peft;
};

// Writes the adapter files into `dir` (created if needed), each file
// atomically. All adapters must share config.rank and the scale alpha / rank.
// `num_layers` is the model's layer count (mlx-lm's config records it).
void save_adapters(const std::filesystem::path& dir, const AdapterSet& set,
                   std::int64_t num_layers);

// Reads a directory in either layout (detected from its files). Throws
// uq::Error naming the file or tensor that is missing or malformed.
AdapterSet load_adapters(const std::filesystem::path& dir);

// The weights file load_adapters reads in `dir` (PEFT's adapter_model.safetensors, else
// mlx-lm's adapters.safetensors; mlx-lm's numbered checkpoints beside it are not read).
// Throws uq::Error as load_adapters does when the directory or its files are missing.
std::filesystem::path adapter_weights_file(const std::filesystem::path& dir);

}  // namespace uq
