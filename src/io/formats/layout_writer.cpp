#include "io/formats/layout_writer.hpp"

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/hf_config.hpp"
#include "io/safetensors.hpp"
#include "io/staged_directory.hpp"
#include "model/decoder.hpp"

namespace uq {
namespace fs = std::filesystem;
namespace {

constexpr const char* kCopiedFiles[] = {"tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "generation_config.json",
                                        "chat_template.jinja"};

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

void append_model_vectors(const Model& model, std::vector<LayoutTensor>& tensors) {
  const DType dtype = model.config().dtype;
  for (const auto& [name, values] : model.named_vectors()) {
    LayoutTensor tensor{name, dtype, {static_cast<std::int64_t>(values->size())}, {}, {}};
    tensor.owned.resize(values->size() * dtype_size(dtype));
    convert_from_f32(values->data(), values->size(), dtype, tensor.owned.data());
    tensors.push_back(std::move(tensor));
  }
}

void write_layout_directory(const Model& model, const fs::path& dir,
                            const std::vector<LayoutTensor>& tensors,
                            const std::map<std::string, std::string>& metadata,
                            const nlohmann::json& config,
                            const std::map<std::string, nlohmann::json>& json_files) {
  StagedDirectory staged(dir);
  SafetensorsWriter writer(staged.path() / "model.safetensors", metadata);
  for (const auto& tensor : tensors) writer.declare(tensor.name, tensor.dtype, tensor.shape);
  for (const auto& tensor : tensors) writer.write(tensor.name, tensor.bytes());
  writer.commit();
  write_file_atomic(staged.path() / "config.json", config.dump(4) + "\n");
  for (const auto& [name, json] : json_files) {
    write_file_atomic(staged.path() / name, json.dump(4) + "\n");
  }
  const fs::path& source = model.source_directory();
  for (const char* file : kCopiedFiles) {
    if (!source.empty() && fs::exists(source / file)) {
      std::error_code error;
      fs::copy_file(source / file, staged.path() / file, error);
      if (error) fail(staged.final_path().string(), ": cannot copy ", file, ": ", error.message());
    }
  }
  staged.commit();
}

std::int64_t llama_in_features(const ModelConfig& config, const std::string& module_path) {
  if (ends_with(module_path, "down_proj")) return config.intermediate_size;
  if (ends_with(module_path, "o_proj")) return config.num_attention_heads * config.head_dim;
  return config.hidden_size;
}

}  // namespace uq
