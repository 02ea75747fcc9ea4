#include "adapter_option.hpp"

#include "core/error.hpp"
#include "model/decoder.hpp"
#include "train/lora_attach.hpp"

namespace uq::cli {

void add_adapter_option(CLI::App& command, std::string& adapter_dir) {
  command.add_option("--adapter", adapter_dir,
                     "LoRA adapter directory (PEFT or mlx-lm layout) applied to the model");
}

std::shared_ptr<Model> load_model_with_adapter(const std::string& model_dir,
                                               const std::string& adapter_dir) {
  auto model = load_model(model_dir);
  if (!adapter_dir.empty()) {
    try {
      attach_adapter_directory(*model, adapter_dir);
    } catch (const Error& error) {
      fail("option --adapter: ", error.what());
    }
  }
  return model;
}

}  // namespace uq::cli
