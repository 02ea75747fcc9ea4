#include "api/streaming_quantize.hpp"

#include <algorithm>
#include <chrono>
#include <future>
#include <map>

#include "api/backend.hpp"
#include "api/module_quantization.hpp"
#include "core/error.hpp"
#include "core/interrupt.hpp"
#include "core/progress.hpp"
#include "io/formats/layout_writer.hpp"
#include "io/hf_config.hpp"
#include "io/safetensors.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "model/decoder.hpp"
#include "model/float_weight.hpp"
#include "model/parameter_names.hpp"

namespace uq {
namespace fs = std::filesystem;
namespace {

struct StreamSource {
  ModelConfig config;
  Checkpoint checkpoint;
};

StreamSource open_source(const fs::path& model_dir) {
  if (!fs::is_directory(model_dir)) fail(model_dir.string(), ": model directory not found");
  const fs::path config_path = model_dir / "config.json";
  if (!fs::exists(config_path)) fail(config_path.string(), ": file not found");
  return {load_model_config(config_path), Checkpoint::open(model_dir)};
}

// The float matrix of a module, checked against the shape the config implies.
TensorView float_matrix(const Checkpoint& checkpoint, const ModuleShape& module) {
  const TensorView view = checkpoint.tensor(module.path + ".weight");
  if (view.dtype != DType::F32 && view.dtype != DType::F16 && view.dtype != DType::BF16) {
    fail("tensor '", view.name,
         "': streaming quantization reads float weights (F32/F16/BF16), found ",
         dtype_name(view.dtype), " (is the model already quantized?)");
  }
  if (view.shape != std::vector<std::int64_t>{module.out_features, module.in_features}) {
    fail("tensor '", view.name, "': expected shape [", module.out_features, ", ",
         module.in_features, "]");
  }
  return view;
}

std::shared_ptr<FloatWeight> float_rows(const TensorView& view, std::int64_t first,
                                        std::int64_t count) {
  const auto row_bytes = static_cast<std::size_t>(view.shape[1]) * dtype_size(view.dtype);
  return std::make_shared<FloatWeight>(view.dtype, count, view.shape[1],
                                       view.data + static_cast<std::size_t>(first) * row_bytes);
}

std::vector<float> vector_values(const Checkpoint& checkpoint, const VectorShape& vector) {
  const TensorView view = checkpoint.tensor(vector.name);
  if (view.shape != std::vector<std::int64_t>{vector.size}) {
    fail("tensor '", vector.name, "': expected shape [", vector.size, "]");
  }
  auto values = view.to_f32();
  checkpoint.file_of(vector.name).release(vector.name);
  return values;
}

void prefetch(const Checkpoint& checkpoint, const std::string& name) {
  if (checkpoint.contains(name)) checkpoint.file_of(name).prefetch(name);
}

std::vector<std::string> paths_of(const std::vector<ModuleShape>& modules) {
  std::vector<std::string> paths;
  for (const auto& module : modules) paths.push_back(module.path);
  return paths;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Declares every output tensor up front when each module's layout follows
// from its first row alone (row-independent formats, modules kept float), so
// that the shards are written directly; otherwise the output spools.
void plan_from_first_rows(const Backend& backend, const UnifiedQuantizationConfig& config,
                          const StreamSource& source, const std::vector<ModuleShape>& modules,
                          LayoutEncoder& encoder, LayoutOutput& output) {
  for (const auto& module : modules) {
    const int bits = module_bits(module.path, module.tied_paths, config);
    if (bits != 0 && !backend.rows_independent(bits, config)) return;
  }
  for (const auto& module : modules) {
    const TensorView view = float_matrix(source.checkpoint, module);
    std::shared_ptr<Weight> weight = float_rows(view, 0, 1);
    if (const int bits = module_bits(module.path, module.tied_paths, config); bits != 0) {
      std::string note;
      if (auto quantized = backend.quantize(module.path, *weight, bits, config, note)) {
        weight = std::move(quantized);
      }
    }
    for (auto& tensor : encoder.module_tensors(module.path, *weight)) {
      if (tensor.shape.empty() || tensor.shape[0] != 1) {
        fail("module '", module.path, "': the layout's tensor '", tensor.name,
             "' does not split by rows; the backend must not declare rows_independent");
      }
      tensor.shape[0] = module.out_features;
      output.plan(tensor.name, tensor.dtype, tensor.shape);
    }
    source.checkpoint.file_of(view.name).release(view.name);
  }
  for (const auto& vector : vector_shapes(source.config)) {
    output.plan(vector.name, source.config.dtype, {vector.size});
  }
}

// Writes one module chunk by chunk: the layout's first tensor (the codes, by
// far the largest) goes out as each chunk is quantized; the others (scales,
// biases) are gathered and written after the last chunk.
class ModuleStreamer {
 public:
  ModuleStreamer(const Backend& backend, const UnifiedQuantizationConfig& config,
                 LayoutEncoder& encoder, LayoutOutput& output, QuantizationReport& report)
      : backend_(backend), config_(config), encoder_(encoder), output_(output), report_(report) {}

  // `file` holds `view`; its pages are dropped after each chunk.
  void write(const ModuleShape& module, const SafetensorsFile& file, const TensorView& view,
             int bits) {
    const std::int64_t out = module.out_features;
    const std::int64_t rows = bits == 0 || backend_.rows_independent(bits, config_)
                                  ? std::min<std::int64_t>(config_.chunk_size, out)
                                  : out;
    std::vector<LayoutTensor> gathered;
    std::size_t bytes = 0;
    bool quantized = false;
    for (std::int64_t first = 0; first < out; first += rows) {
      throw_if_interrupted();
      const std::int64_t count = std::min(rows, out - first);
      std::shared_ptr<Weight> weight = float_rows(view, first, count);
      if (first == 0) {
        weight = quantize_module(backend_, module.path, weight, bits, config_, report_);
        quantized = report_.layers.back().bits != 0;
      } else if (quantized) {
        std::string note;
        weight = backend_.quantize(module.path, *weight, bits, config_, note);
        if (!weight) fail("module '", module.path, "': rows from ", first, " stayed float: ", note);
      }
      bytes += weight->storage_bytes();
      auto tensors = encoder_.module_tensors(module.path, *weight);
      file.release(view.name);
      if (count == out) {
        for (const auto& tensor : tensors) output_.add(tensor);
        return;
      }
      append_chunk(module, first, count, tensors, gathered);
    }
    for (const auto& tensor : gathered) output_.add(tensor);
    report_.layers.back().parameters = out * module.in_features;
    report_.layers.back().bytes = bytes;
  }

 private:
  void append_chunk(const ModuleShape& module, std::int64_t first, std::int64_t count,
                    std::vector<LayoutTensor>& tensors, std::vector<LayoutTensor>& gathered) {
    for (const auto& tensor : tensors) {
      if (tensor.shape.empty() || tensor.shape[0] != count) {
        fail("module '", module.path, "': the layout's tensor '", tensor.name,
             "' does not split by rows; the backend must not declare rows_independent");
      }
    }
    if (first == 0) {
      auto shape = tensors[0].shape;
      shape[0] = module.out_features;
      output_.begin(tensors[0].name, tensors[0].dtype, shape);
      for (std::size_t i = 1; i < tensors.size(); ++i) {
        gathered.push_back({tensors[i].name, tensors[i].dtype, tensors[i].shape, {}, {}});
        gathered.back().shape[0] = module.out_features;
      }
    }
    output_.append(tensors[0].bytes());
    for (std::size_t i = 1; i < tensors.size(); ++i) {
      const auto bytes = tensors[i].bytes();
      gathered[i - 1].owned.insert(gathered[i - 1].owned.end(), bytes.begin(), bytes.end());
    }
  }

  const Backend& backend_;
  const UnifiedQuantizationConfig& config_;
  LayoutEncoder& encoder_;
  LayoutOutput& output_;
  QuantizationReport& report_;
};

}  // namespace

std::pair<std::shared_ptr<Model>, Quantizer> quantize_model_streaming(
    const fs::path& model_dir, UnifiedQuantizationConfig config, const std::string& note) {
  validate(config);
  const auto start = std::chrono::steady_clock::now();
  StreamSource source = open_source(model_dir);
  const fs::path tokenizer_path = model_dir / "tokenizer.json";
  if (!fs::exists(tokenizer_path)) fail(tokenizer_path.string(), ": file not found");
  QuantizationReport report;
  if (!note.empty()) report.warnings.push_back(note);
  apply_choice(resolve_backend(config), report);
  config.backend = report.backend;
  const Backend& backend = *find_backend(report.backend);
  const auto modules = module_shapes(source.config);
  warn_unmatched_patterns(config, paths_of(modules), report.warnings);
  const Checkpoint& checkpoint = source.checkpoint;
  Progress progress("quantize", static_cast<std::int64_t>(modules.size()));
  // The model asks for its matrices in its own order; each is read, quantized
  // and its pages dropped before the next.
  std::map<std::string, LayerQuantization> layers;
  const WeightFactory quantized_weights = [&](const std::string& path) -> std::shared_ptr<Weight> {
    throw_if_interrupted();
    const auto module = std::find_if(modules.begin(), modules.end(),
                                     [&path](const ModuleShape& m) { return m.path == path; });
    if (module == modules.end()) fail("module '", path, "' is not part of this architecture");
    progress.advance(0, path);
    const TensorView view = float_matrix(checkpoint, *module);
    std::shared_ptr<Weight> weight = float_rows(view, 0, module->out_features);
    checkpoint.file_of(view.name).release(view.name);
    QuantizationReport module_report;
    weight = quantize_module(backend, path, std::move(weight),
                             module_bits(path, module->tied_paths, config), config, module_report);
    layers.emplace(path, std::move(module_report.layers.front()));
    report.warnings.insert(report.warnings.end(), module_report.warnings.begin(),
                           module_report.warnings.end());
    progress.advance();
    return weight;
  };
  auto model =
      std::make_shared<Model>(source.config, checkpoint_tensors(checkpoint), quantized_weights);
  model->set_tokenizer(std::make_shared<const Tokenizer>(Tokenizer::from_file(tokenizer_path)));
  model->set_source_directory(model_dir);
  for (const auto& module : modules) report.layers.push_back(std::move(layers.at(module.path)));
  report.seconds = seconds_since(start);
  return {std::move(model), Quantizer(std::move(config), std::move(report))};
}

Quantizer quantize_to_directory(const fs::path& model_dir, const fs::path& out_dir,
                                UnifiedQuantizationConfig config, const std::string& note) {
  validate(config);
  const auto start = std::chrono::steady_clock::now();
  const StreamSource source = open_source(model_dir);
  QuantizationReport report;
  if (!note.empty()) report.warnings.push_back(note);
  apply_choice(resolve_backend(config), report);
  config.backend = report.backend;
  const Backend& backend = *find_backend(report.backend);
  const auto modules = module_shapes(source.config);
  warn_unmatched_patterns(config, paths_of(modules), report.warnings);
  const auto encoder = backend.encoder(source.config.dtype, config);
  LayoutOutput output(out_dir, encoder->metadata(), encoder->shard_policy());
  plan_from_first_rows(backend, config, source, modules, *encoder, output);
  ModuleStreamer streamer(backend, config, *encoder, output, report);
  const Checkpoint& checkpoint = source.checkpoint;
  Progress progress("quantize", static_cast<std::int64_t>(modules.size()));
  // The disk reads the next matrix (in a helper thread: the kernel's
  // read-ahead request blocks) while this one is quantized.
  std::future<void> next_read;
  for (std::size_t i = 0; i < modules.size(); ++i) {
    const ModuleShape& module = modules[i];
    progress.advance(0, module.path);
    if (next_read.valid()) next_read.get();
    if (i + 1 < modules.size()) {
      next_read = std::async(
          std::launch::async,
          [&checkpoint, name = modules[i + 1].path + ".weight"] { prefetch(checkpoint, name); });
    }
    const TensorView view = float_matrix(checkpoint, module);
    streamer.write(module, checkpoint.file_of(view.name), view,
                   module_bits(module.path, module.tied_paths, config));
    progress.advance();
  }
  for (const auto& vector : vector_shapes(source.config)) {
    output.add(vector_tensor(vector.name, vector_values(checkpoint, vector), source.config.dtype));
  }
  output.commit(encoder->config(source.config.raw), encoder->json_files(), model_dir);
  report.seconds = seconds_since(start);
  return Quantizer(std::move(config), std::move(report));
}

}  // namespace uq
