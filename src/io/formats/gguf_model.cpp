#include "io/formats/gguf_model.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/progress.hpp"
#include "core/thread_pool.hpp"
#include "io/formats/gguf_llama.hpp"
#include "io/formats/gguf_reader.hpp"
#include "io/formats/gguf_writer.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "model/decoder.hpp"
#include "model/float_weight.hpp"
#include "quant/ggml_weight.hpp"

namespace uq {
namespace {

// Rows dequantized to float32 at a time while exporting one matrix.
constexpr std::int64_t kExportChunkRows = 256;

bool is_qk_projection(const std::string& hf_module, std::int64_t* heads,
                      const ModelConfig& config) {
  if (hf_module.ends_with(".self_attn.q_proj")) {
    *heads = config.num_attention_heads;
    return true;
  }
  if (hf_module.ends_with(".self_attn.k_proj")) {
    *heads = config.num_key_value_heads;
    return true;
  }
  return false;
}

std::string pre_tokenizer_for(const Model& model,
                              const std::function<void(const std::string&)>& log) {
  const auto tokenizer_path = model.source_directory() / "tokenizer.json";
  if (!model.source_directory().empty() && std::filesystem::exists(tokenizer_path)) {
    std::ifstream stream(tokenizer_path);
    const auto tokenizer_json = nlohmann::json::parse(stream, nullptr, false);
    if (const auto name = gguf_pre_tokenizer_name(tokenizer_json)) return *name;
    fail(tokenizer_path.string(),
         ": pre_tokenizer has no llama.cpp equivalent here (byte-level GPT-2 and Llama 3 "
         "splits are supported)");
  }
  if (log) log("no tokenizer.json beside the model: writing tokenizer.ggml.pre = gpt-2");
  return "gpt-2";
}

void export_matrix(GgufWriter& writer, const std::string& name, const Weight& weight, GgmlType type,
                   const std::vector<std::int64_t>& row_order) {
  const std::int64_t rows = weight.out_features();
  const std::int64_t in = weight.in_features();
  const std::size_t row_bytes = ggml_row_bytes(type, in);
  std::vector<std::byte> packed(row_bytes * static_cast<std::size_t>(rows));
  std::vector<float> chunk;
  for (std::int64_t first = 0; first < rows; first += kExportChunkRows) {
    const std::int64_t count = std::min(kExportChunkRows, rows - first);
    chunk.resize(static_cast<std::size_t>(count * in));
    if (row_order.empty()) {
      weight.dequantize_rows(first, count, chunk.data());
    } else {
      for (std::int64_t r = 0; r < count; ++r) {
        weight.dequantize_rows(row_order[static_cast<std::size_t>(first + r)], 1,
                               chunk.data() + r * in);
      }
    }
    // NaN/Inf have no block code (ggml's quantizers would convert NaN to an integer): a weight
    // holding one is refused, as `uq quantize` refuses it.
    for (std::int64_t r = 0; r < count; ++r) {
      const float* row = chunk.data() + r * in;
      const float* bad = std::find_if(row, row + in, [](float v) { return !std::isfinite(v); });
      if (bad != row + in) {
        const auto source =
            row_order.empty() ? first + r : row_order[static_cast<std::size_t>(first + r)];
        fail("GGUF export: tensor '", name, "': non-finite value ", *bad, " at row ", source,
             ", column ", bad - row);
      }
    }
    parallel_for(0, count, 8, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t r = lo; r < hi; ++r) {
        ggml_quantize_row(type, chunk.data() + r * in, in,
                          packed.data() + static_cast<std::size_t>(first + r) * row_bytes);
      }
    });
  }
  writer.write(name, packed);
}

}  // namespace

GgufExportReport export_gguf(const Model& model, const std::filesystem::path& path,
                             const GgufRecipe& recipe,
                             const std::function<void(const std::string&)>& log) {
  const ModelConfig& config = model.config();
  if (!model.tokenizer()) fail("GGUF export: the model has no tokenizer");
  GgufWriter writer(path);
  writer.add_string("general.name", model.source_directory().empty()
                                        ? std::string("model")
                                        : model.source_directory().filename().string());
  add_llama_metadata(writer, config);
  writer.add_u32("general.file_type", gguf_file_type(recipe));
  writer.add_u32("general.quantization_version", 2);
  add_tokenizer_metadata(writer, *model.tokenizer(), pre_tokenizer_for(model, log),
                         config.vocab_size, config);

  struct Matrix {
    std::string name;
    std::shared_ptr<const Weight> weight;
    GgmlType type;
    std::vector<std::int64_t> row_order;
  };
  GgufExportReport report;
  std::vector<Matrix> matrices;
  std::set<std::string> dequantized_kinds;
  for (const auto& [module, weight] : model.named_weights()) {
    const auto gguf = gguf_module_name(module);
    if (!gguf) fail("GGUF export: module '", module, "' has no llama.cpp tensor name");
    // Tied embeddings: llama.cpp gives token_embd the output matrix's type.
    const std::string type_role =
        (*gguf == "token_embd" && config.tie_word_embeddings) ? "output" : *gguf;
    Matrix matrix{
        *gguf + ".weight",
        weight,
        gguf_tensor_type(recipe, type_role, config.num_hidden_layers, weight->in_features()),
        {}};
    std::int64_t heads = 0;
    if (is_qk_projection(module, &heads, config)) {
      matrix.row_order = gguf_qk_row_order(heads, config.head_dim);
    }
    if (dynamic_cast<const FloatWeight*>(weight.get()) == nullptr) {
      report.dequantized = true;
      dequantized_kinds.insert(weight->describe());
    }
    report.tensors.push_back({matrix.name, matrix.type, weight->describe()});
    writer.declare(matrix.name, {weight->in_features(), weight->out_features()}, matrix.type);
    matrices.push_back(std::move(matrix));
  }
  std::vector<std::pair<std::string, const std::vector<float>*>> vectors;
  for (const auto& [name, values] : model.named_vectors()) {
    const auto dot = name.rfind('.');
    const auto gguf = gguf_module_name(name.substr(0, dot));
    if (!gguf) fail("GGUF export: tensor '", name, "' has no llama.cpp tensor name");
    const std::string gguf_name = *gguf + name.substr(dot);
    writer.declare(gguf_name, {static_cast<std::int64_t>(values->size())}, GgmlType::F32);
    report.tensors.push_back({gguf_name, GgmlType::F32, "f32"});
    vectors.emplace_back(gguf_name, values);
  }
  if (log) {
    for (const auto& kind : dequantized_kinds) {
      log("dequantizing " + kind + " weights to float32 before quantizing them to " + recipe.name);
    }
  }

  Progress progress("export gguf", static_cast<std::int64_t>(matrices.size()));
  for (const auto& matrix : matrices) {
    progress.advance(0, matrix.name);
    export_matrix(writer, matrix.name, *matrix.weight, matrix.type, matrix.row_order);
    progress.advance(1, matrix.name);
  }
  progress.finish();
  for (const auto& [name, values] : vectors) {
    writer.write(name, std::as_bytes(std::span<const float>(*values)));
  }
  writer.commit();
  report.file_bytes = static_cast<std::size_t>(std::filesystem::file_size(path));
  return report;
}

std::shared_ptr<Model> load_gguf_model(const std::filesystem::path& path) {
  const std::shared_ptr<const GgufFile> file = GgufFile::open(path);
  const ModelConfig config = parse_model_config(hf_config_from_gguf(*file), file->origin());

  const auto gguf_tensor_of = [file](const std::string& hf_name) -> const GgufTensorInfo* {
    const auto dot = hf_name.rfind('.');
    if (dot == std::string::npos) return nullptr;
    const auto module = gguf_module_name(hf_name.substr(0, dot));
    return module ? file->find_tensor(*module + hf_name.substr(dot)) : nullptr;
  };
  TensorSource tensors;
  tensors.contains = [gguf_tensor_of](const std::string& name) {
    return gguf_tensor_of(name) != nullptr;
  };
  tensors.tensor = [file, gguf_tensor_of](const std::string& name) {
    const GgufTensorInfo* info = gguf_tensor_of(name);
    if (info == nullptr) fail(file->origin(), ": no tensor for '", name, "'");
    TensorView view;
    view.name = info->name;
    const auto dtype = ggml_element_dtype(info->type);
    if (!dtype) {
      fail(file->origin(), ": tensor '", info->name, "' is ", ggml_type_name(info->type),
           "; a vector must be F32, F16 or BF16");
    }
    view.dtype = *dtype;
    view.shape.assign(info->dims.rbegin(), info->dims.rend());
    const auto bytes = file->tensor_data(*info);
    view.data = bytes.data();
    view.nbytes = bytes.size();
    return view;
  };

  const WeightFactory weights = [file,
                                 config](const std::string& module) -> std::shared_ptr<Weight> {
    const auto gguf = gguf_module_name(module);
    const GgufTensorInfo* info = gguf ? file->find_tensor(*gguf + ".weight") : nullptr;
    if (info == nullptr) {
      fail(file->origin(), ": no tensor '", gguf.value_or(module), ".weight' (for ", module, ")");
    }
    if (info->dims.size() != 2) {
      fail(file->origin(), ": tensor '", info->name, "' has ", info->dims.size(),
           " dimensions, expected 2");
    }
    const std::int64_t in = info->dims[0];
    const std::int64_t out = info->dims[1];
    std::span<const std::byte> bytes = file->tensor_data(*info);
    std::vector<std::byte> reordered;
    std::int64_t heads = 0;
    if (is_qk_projection(module, &heads, config)) {
      if (heads * config.head_dim != out) {
        fail(file->origin(), ": tensor '", info->name, "' has ", out, " rows, expected ",
             heads * config.head_dim);
      }
      const std::size_t row_bytes = ggml_row_bytes(info->type, in);
      reordered.resize(bytes.size());
      const auto order = gguf_qk_row_order(heads, config.head_dim);
      for (std::size_t g = 0; g < order.size(); ++g) {
        std::copy_n(bytes.data() + g * row_bytes, row_bytes,
                    reordered.data() + static_cast<std::size_t>(order[g]) * row_bytes);
      }
      bytes = reordered;
    }
    if (const auto dtype = ggml_element_dtype(info->type)) {
      return std::make_shared<FloatWeight>(*dtype, out, in, bytes.data());
    }
    return std::make_shared<GgmlWeight>(info->type, out, in, bytes);
  };

  auto model = std::make_shared<Model>(config, tensors, weights);
  model->set_tokenizer(std::make_shared<const Tokenizer>(
      Tokenizer::from_json(tokenizer_json_from_gguf(*file), file->origin())));
  return model;
}

}  // namespace uq
