#pragma once
// `--adapter DIR` for the commands that run a model (eval, generate, logits):
// a LoRA adapter in the PEFT or mlx-lm layout applied on top of MODEL.
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

namespace uq {
class Model;
}

namespace uq::cli {

void add_adapter_option(CLI::App& command, std::string& adapter_dir);
// Loads MODEL and, when `adapter_dir` is not empty, attaches its adapters.
// Throws uq::Error naming the directory, file or module at fault.
std::shared_ptr<Model> load_model_with_adapter(const std::string& model_dir,
                                               const std::string& adapter_dir);

}  // namespace uq::cli
