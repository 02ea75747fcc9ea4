#include "api/streaming_quantize.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>

#include "api/backend.hpp"
#include "api/module_quantization.hpp"
#include "calibration/calibrate_model.hpp"
#include "core/error.hpp"
#include "core/interrupt.hpp"
#include "core/progress.hpp"
#include "io/formats/layout_writer.hpp"
#include "io/hf_config.hpp"
#include "io/read_ahead.hpp"
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

std::size_t row_bytes(const TensorView& view) {
  return static_cast<std::size_t>(view.shape[1]) * dtype_size(view.dtype);
}

// `count` rows of `view`'s matrix stored at `data`, borrowed (not copied).
std::shared_ptr<FloatWeight> float_rows(const TensorView& view, const std::byte* data,
                                        std::int64_t count) {
  return FloatWeight::borrow({view.name,
                              view.dtype,
                              {count, view.shape[1]},
                              data,
                              static_cast<std::size_t>(count) * row_bytes(view)});
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

std::vector<std::string> paths_of(const std::vector<ModuleShape>& modules) {
  std::vector<std::string> paths;
  for (const auto& module : modules) paths.push_back(module.path);
  return paths;
}

const ModuleShape& module_named(const std::vector<ModuleShape>& modules, const std::string& path) {
  const auto found = std::find_if(modules.begin(), modules.end(),
                                  [&path](const ModuleShape& m) { return m.path == path; });
  if (found == modules.end()) fail("module '", path, "' is not part of this architecture");
  return *found;
}

// The model over the checkpoint's mapped bytes: its float weights borrow
// them, so a computation makes resident only the pages it touches and the
// caller drops them once used.
std::shared_ptr<Model> mapped_model(const StreamSource& source,
                                    const std::vector<ModuleShape>& modules,
                                    const fs::path& model_dir) {
  const WeightFactory borrowed = [&](const std::string& path) -> std::shared_ptr<Weight> {
    return FloatWeight::borrow(float_matrix(source.checkpoint, module_named(modules, path)));
  };
  auto model =
      std::make_shared<Model>(source.config, checkpoint_tensors(source.checkpoint), borrowed);
  if (const fs::path tokenizer = model_dir / "tokenizer.json"; fs::exists(tokenizer)) {
    model->set_tokenizer(std::make_shared<const Tokenizer>(Tokenizer::from_file(tokenizer)));
  }
  model->set_source_directory(model_dir);
  return model;
}

void release(const Checkpoint& checkpoint, const std::string& module_path) {
  const std::string name = module_path + ".weight";
  checkpoint.file_of(name).release(name);
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
    std::shared_ptr<Weight> weight = float_rows(view, view.data, 1);
    if (const int bits = module_bits(module.path, module.tied_paths, config); bits != 0) {
      std::string note;
      if (auto quantized = backend.quantize(module.path, *weight, bits, config, note)) {
        weight = std::move(quantized);
      }
    }
    for (auto& tensor : encoder.module_tensors(module.path, *weight)) {
      if (tensor.shape.empty()) {  // a scalar, the same for every row (LLM.int8's weight_format)
        output.plan(tensor.name, tensor.dtype, {});
        continue;
      }
      if (tensor.shape[0] != 1) {
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
  // A module's float rows [first, first + count), asked for in the order of row_blocks().
  using RowChunks = std::function<const std::byte*(std::int64_t first, std::int64_t count)>;

  ModuleStreamer(const Backend& backend, const UnifiedQuantizationConfig& config,
                 LayoutEncoder& encoder, LayoutOutput& output, QuantizationReport& report)
      : backend_(backend), config_(config), encoder_(encoder), output_(output), report_(report) {}

  // The (first row, count) blocks write() asks of its RowChunks, in order:
  // chunk_size rows at a time, of each of the format's interleaved row parts
  // in turn (Backend::interleaved_row_parts), or the whole matrix.
  std::vector<std::pair<std::int64_t, std::int64_t>> row_blocks(const ModuleShape& module,
                                                                const TensorView& view,
                                                                int bits) const {
    const Chunking chunking = chunking_of(module, view, bits);
    const std::int64_t part_rows = module.out_features / chunking.parts;
    std::vector<std::pair<std::int64_t, std::int64_t>> blocks;
    for (std::int64_t first = 0; first < part_rows; first += chunking.rows) {
      const std::int64_t count = std::min(chunking.rows, part_rows - first);
      for (std::int64_t p = 0; p < chunking.parts; ++p) {
        blocks.emplace_back(p * part_rows + first, count);
      }
    }
    return blocks;
  }

  // `view` is the module's float matrix, whose rows come from `rows_at`.
  void write(const ModuleShape& module, const TensorView& view, int bits,
             const RowChunks& rows_at) {
    if (auto chunked = chunked_module(module, bits)) {
      write_chunked(module, view, bits, *chunked, rows_at);
      return;
    }
    const std::int64_t out = module.out_features;
    const std::int64_t parts = chunking_of(module, view, bits).parts;
    const auto blocks = row_blocks(module, view, bits);
    std::vector<Gathered> gathered;
    std::vector<std::byte> joined;  // the parts' rows of one chunk, one after another
    std::size_t bytes = 0;
    bool quantized = false;
    for (std::size_t b = 0; b < blocks.size(); b += static_cast<std::size_t>(parts)) {
      throw_if_interrupted();
      const std::int64_t count = blocks[b].second;
      const std::byte* rows = nullptr;
      if (parts == 1) {
        rows = rows_at(blocks[b].first, count);
      } else {
        const std::size_t part_bytes = static_cast<std::size_t>(count) * row_bytes(view);
        joined.resize(part_bytes * static_cast<std::size_t>(parts));
        for (std::int64_t p = 0; p < parts; ++p) {
          const auto& [first, rows_in_part] = blocks[b + static_cast<std::size_t>(p)];
          std::memcpy(joined.data() + static_cast<std::size_t>(p) * part_bytes,
                      rows_at(first, rows_in_part), part_bytes);
        }
        rows = joined.data();
      }
      std::shared_ptr<Weight> weight = float_rows(view, rows, count * parts);
      if (b == 0) {
        weight = quantize_module(backend_, module.path, weight, bits, config_, report_);
        quantized = report_.layers.back().bits != 0;
      } else if (quantized) {
        std::string note;
        weight = backend_.quantize(module.path, *weight, bits, config_, note);
        if (!weight) {
          fail("module '", module.path, "': rows from ", blocks[b].first, " stayed float: ", note);
        }
      }
      bytes += weight->storage_bytes();
      auto tensors = encoder_.module_tensors(module.path, *weight);
      if (count * parts == out) {
        for (const auto& tensor : tensors) output_.add(tensor);
        return;
      }
      append_chunk(module, parts, b == 0, count, tensors, gathered);
    }
    for (auto& tensor : gathered) {
      for (const auto& part : tensor.parts) {
        tensor.layout.owned.insert(tensor.layout.owned.end(), part.begin(), part.end());
      }
      output_.add(tensor.layout);
    }
    report_.layers.back().parameters = out * module.in_features;
    report_.layers.back().bytes = bytes;
  }

  // A module whose codes stream but whose other tensors follow from the
  // whole matrix (Backend::chunked_module): they come after the last chunk.
  void write_chunked(const ModuleShape& module, const TensorView& view, int bits,
                     ChunkedModule& chunked, const RowChunks& rows_at) {
    const auto blocks = row_blocks(module, view, bits);
    for (std::size_t b = 0; b < blocks.size(); ++b) {
      throw_if_interrupted();
      const auto& [first, count] = blocks[b];
      const auto weight = chunked.add_rows(*float_rows(view, rows_at(first, count), count));
      const LayoutTensor codes = encoder_.module_tensors(module.path, *weight).front();
      if (b == 0) output_.begin(codes.name, codes.dtype, chunked.codes_shape());
      output_.append(codes.bytes());
    }
    for (const auto& tensor : chunked.finish(encoder_)) output_.add(tensor);
    LayerQuantization line;
    line.path = module.path;
    line.scheme = chunked.describe();
    line.bits = bits;
    line.parameters = module.out_features * module.in_features;
    line.bytes = chunked.storage_bytes();
    report_.layers.push_back(std::move(line));
  }

  // The same from a float weight that may borrow the mapping of `checkpoint`,
  // whose pages of this module are dropped as the chunks are done with.
  void write_weight(const ModuleShape& module, const Weight& weight, int bits,
                    const Checkpoint& checkpoint) {
    const auto* dense = dynamic_cast<const FloatWeight*>(&weight);
    if (dense == nullptr) fail("module '", module.path, "' is ", weight.describe(), ", not float");
    const TensorView view{module.path + ".weight",
                          dense->dtype(),
                          {dense->out_features(), dense->in_features()},
                          dense->bytes().data(),
                          dense->bytes().size()};
    const SafetensorsFile& file = checkpoint.file_of(view.name);
    write(module, view, bits, [&](std::int64_t first, std::int64_t) {
      if (first > 0) file.release(view.name);
      return view.data + static_cast<std::size_t>(first) * row_bytes(view);
    });
    file.release(view.name);
  }

 private:
  // A tensor written after the last chunk: its rows part by part.
  struct Gathered {
    LayoutTensor layout;
    std::vector<std::vector<std::byte>> parts;
  };

  // Rows [a, a + rows) of each of `parts` equal row parts make one chunk.
  struct Chunking {
    std::int64_t parts;
    std::int64_t rows;
  };
  std::unique_ptr<ChunkedModule> chunked_module(const ModuleShape& module, int bits) const {
    if (bits == 0) return nullptr;
    return backend_.chunked_module(module.path, module.out_features, module.in_features, bits,
                                   config_);
  }

  Chunking chunking_of(const ModuleShape& module, const TensorView& view, int bits) const {
    const Chunking rows{1, config_.chunk_size};
    if (bits == 0 || backend_.rows_independent(bits, config_)) return rows;
    if (const auto chunked = chunked_module(module, bits)) {
      // chunk_size rounded down to the format's multiple, at least one multiple.
      const std::int64_t multiple = chunked->row_multiple();
      return {1, std::max(multiple, config_.chunk_size / multiple * multiple)};
    }
    const int parts = backend_.interleaved_row_parts(bits, config_);
    if (parts == 0 || module.out_features % parts != 0) return {1, module.out_features};
    // A module the format keeps float (quanto's embedding) streams plain rows.
    std::string note;
    if (!backend_.quantize(module.path, *float_rows(view, view.data, 1), bits, config_, note)) {
      return rows;
    }
    return {parts, config_.chunk_size};
  }

  void append_chunk(const ModuleShape& module, std::int64_t parts, bool first_chunk,
                    std::int64_t count, std::vector<LayoutTensor>& tensors,
                    std::vector<Gathered>& gathered) {
    const auto does_not_split = [&](const LayoutTensor& tensor) {
      fail("module '", module.path, "': the layout's tensor '", tensor.name,
           "' does not split by rows; the backend must not stream it in chunks");
    };
    const LayoutTensor& codes = tensors[0];
    if (codes.shape.empty() || codes.shape[0] % count != 0) does_not_split(codes);
    if (first_chunk) {
      auto shape = codes.shape;
      shape[0] = shape[0] / count * (module.out_features / parts);
      output_.begin(codes.name, codes.dtype, shape);
      for (std::size_t i = 1; i < tensors.size(); ++i) {
        gathered.push_back({{tensors[i].name, tensors[i].dtype, tensors[i].shape, {}, {}},
                            std::vector<std::vector<std::byte>>(static_cast<std::size_t>(parts))});
        auto& shape_i = gathered.back().layout.shape;
        if (!shape_i.empty()) shape_i[0] = shape_i[0] / (count * parts) * module.out_features;
      }
    }
    output_.append(codes.bytes());
    for (std::size_t i = 1; i < tensors.size(); ++i) {
      const auto& tensor = tensors[i];
      const auto bytes = tensor.bytes();
      auto& target = gathered[i - 1];
      if (tensor.shape.empty()) {  // the same for every chunk
        if (first_chunk) target.parts[0].assign(bytes.begin(), bytes.end());
        continue;
      }
      if (tensor.shape[0] % (count * parts) != 0) does_not_split(tensor);
      const std::size_t part_bytes = bytes.size() / static_cast<std::size_t>(parts);
      for (std::int64_t p = 0; p < parts; ++p) {
        const auto begin = bytes.begin() +
                           static_cast<std::ptrdiff_t>(p) * static_cast<std::ptrdiff_t>(part_bytes);
        target.parts[static_cast<std::size_t>(p)].insert(
            target.parts[static_cast<std::size_t>(p)].end(), begin,
            begin + static_cast<std::ptrdiff_t>(part_bytes));
      }
    }
  }

  const Backend& backend_;
  const UnifiedQuantizationConfig& config_;
  LayoutEncoder& encoder_;
  LayoutOutput& output_;
  QuantizationReport& report_;
};

// Round-to-nearest: every module chunk by chunk, in file order, with the
// output planned ahead where the layout allows. A helper thread reads the
// chunks with pread a few ahead (nothing is mapped: no page faults, no pages
// to drop) while this one quantizes and writes.
void stream_rounded(const UnifiedQuantizationConfig& config, const StreamSource& source,
                    const std::vector<ModuleShape>& modules, LayoutEncoder& encoder,
                    LayoutOutput& output, ModuleStreamer& streamer, const Backend& backend) {
  plan_from_first_rows(backend, config, source, modules, encoder, output);
  const Checkpoint& checkpoint = source.checkpoint;
  std::vector<ReadRange> ranges;
  std::size_t largest_chunk = 0;
  for (const auto& module : modules) {
    const TensorView view = float_matrix(checkpoint, module);
    const SafetensorsFile& file = checkpoint.file_of(view.name);
    const auto offset = file.file_offset(view.name);
    for (const auto& [first, count] :
         streamer.row_blocks(module, view, module_bits(module.path, module.tied_paths, config))) {
      ranges.push_back({file.path(), offset + static_cast<std::uint64_t>(first) * row_bytes(view),
                        static_cast<std::size_t>(count) * row_bytes(view)});
      largest_chunk = std::max(largest_chunk, ranges.back().bytes);
    }
  }
  // Enough ahead to keep the disk busy through a chunk's quantization.
  ReadAhead reader(std::move(ranges), std::max<std::size_t>(3 * largest_chunk, 64u << 20));
  Progress progress("quantize", static_cast<std::int64_t>(modules.size()));
  for (const auto& module : modules) {
    progress.advance(0, module.path);
    streamer.write(module, float_matrix(checkpoint, module),
                   module_bits(module.path, module.tied_paths, config),
                   [&reader](std::int64_t, std::int64_t) { return reader.next().data(); });
    progress.advance();
  }
}

// Calibrated methods: the embedding (round-to-nearest) first, then each
// decoder block as soon as calibration is done with it, then lm_head. Only
// the block being calibrated is resident: its pages are dropped and its
// quantized weights written and freed before the next block starts.
void stream_calibrated(const UnifiedQuantizationConfig& config, const StreamSource& source,
                       const std::vector<ModuleShape>& modules, Model& model,
                       LayoutEncoder& encoder, LayoutOutput& output, ModuleStreamer& streamer,
                       QuantizationReport& report) {
  const Checkpoint& checkpoint = source.checkpoint;
  auto slots = model.weight_slots();  // in module order
  std::size_t next = 0;               // modules[next] is written next
  // The module's weight as calibration left it (AWQ may have scaled a float one).
  const auto round_to_nearest = [&](const CalibratedLayer* calibrated) {
    const ModuleShape& module = modules[next];
    streamer.write_weight(module, *slots[next].weight,
                          module_bits(module.path, module.tied_paths, config), checkpoint);
    note_round_to_nearest(config, calibrated, report);
  };
  round_to_nearest(nullptr);
  ++next;
  report.calibration_device = calibration_device(model, calibration_options(config),
                                                 calibration_grids(config, report.backend));
  calibrate_blocks(
      model, calibration_options(config), calibration_grids(config, report.backend),
      [&](std::int64_t, std::vector<CalibratedLayer> layers) {
        for (const auto& layer : layers) {
          const ModuleShape& module = modules[next];
          if (layer.path != module.path) fail("calibrated '", layer.path, "' out of order");
          const int bits = module_bits(module.path, module.tied_paths, config);
          if (bits != 0 && layer.weight) {
            for (const auto& tensor : encoder.module_tensors(module.path, *layer.weight)) {
              output.add(tensor);
            }
            report.layers.push_back(calibrated_line(layer, bits, config));
          } else {
            round_to_nearest(&layer);
          }
          // Done with: the float pages go, and the quantized weight with the
          // mapped one back in its slot.
          slots[next].weight = FloatWeight::borrow(float_matrix(checkpoint, module));
          release(checkpoint, module.path);
          ++next;
        }
      });
  for (; next < modules.size(); ++next) round_to_nearest(nullptr);
}

}  // namespace

std::pair<std::shared_ptr<Model>, Quantizer> quantize_model_streaming(
    const fs::path& model_dir, UnifiedQuantizationConfig config, const std::string& note) {
  validate(config);
  const auto start = std::chrono::steady_clock::now();
  const StreamSource source = open_source(model_dir);
  if (!fs::exists(model_dir / "tokenizer.json")) {
    fail((model_dir / "tokenizer.json").string(), ": file not found");
  }
  QuantizationReport report;
  if (!note.empty()) report.warnings.push_back(note);
  apply_choice(resolve_backend(config), report);
  config.backend = report.backend;
  const Backend& backend = *find_backend(report.backend);
  const auto modules = module_shapes(source.config);
  warn_unmatched_patterns(config, paths_of(modules), report.warnings);
  const Checkpoint& checkpoint = source.checkpoint;
  auto model = mapped_model(source, modules, model_dir);
  // Each module leaves the mapping as it is done with: quantized (or copied,
  // when kept float) from its mapped bytes, which are then dropped.
  std::map<std::string, LayerQuantization> layers;
  const auto round_to_nearest = [&](WeightSlot& slot, const CalibratedLayer* calibrated) {
    throw_if_interrupted();
    const auto& mapped = dynamic_cast<const FloatWeight&>(*slot.weight);
    QuantizationReport module_report;
    slot.weight =
        quantize_module(backend, slot.path,
                        std::make_shared<FloatWeight>(mapped.dtype(), mapped.out_features(),
                                                      mapped.in_features(), mapped.bytes().data()),
                        module_bits(slot.path, slot.tied_paths, config), config, module_report);
    note_round_to_nearest(config, calibrated, module_report);
    release(checkpoint, slot.path);
    layers.emplace(slot.path, std::move(module_report.layers.front()));
    report.warnings.insert(report.warnings.end(), module_report.warnings.begin(),
                           module_report.warnings.end());
    report.not_calibrated.insert(report.not_calibrated.end(), module_report.not_calibrated.begin(),
                                 module_report.not_calibrated.end());
  };
  auto slots = model->weight_slots();
  if (config.method != "rtn") {
    report.calibration_device = calibration_device(*model, calibration_options(config),
                                                   calibration_grids(config, report.backend));
    calibrate_blocks(
        *model, calibration_options(config), calibration_grids(config, report.backend),
        [&](std::int64_t, std::vector<CalibratedLayer> block) {
          for (auto& calibrated : block) {
            auto slot = std::find_if(slots.begin(), slots.end(), [&](const WeightSlot& s) {
              return s.path == calibrated.path;
            });
            const int bits = module_bits(calibrated.path, {}, config);
            if (bits != 0 && calibrated.weight) {
              layers.emplace(calibrated.path, calibrated_line(calibrated, bits, config));
              release(checkpoint, calibrated.path);
            } else {
              round_to_nearest(*slot, &calibrated);
            }
          }
        });
  }
  Progress progress("quantize", static_cast<std::int64_t>(slots.size()));
  for (auto& slot : slots) {
    progress.advance(0, slot.path);
    if (!layers.contains(slot.path)) round_to_nearest(slot, nullptr);
    progress.advance();
  }
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
  ModuleStreamer streamer(backend, config, *encoder, output, report);
  const Checkpoint& checkpoint = source.checkpoint;
  if (config.method != "rtn") {
    const auto model = mapped_model(source, modules, model_dir);
    stream_calibrated(config, source, modules, *model, *encoder, output, streamer, report);
    // AWQ folds scales into the norms: the model's vectors are the ones to save.
    for (const auto& [name, values] : model->named_vectors()) {
      output.add(vector_tensor(name, *values, source.config.dtype));
    }
  } else {
    stream_rounded(config, source, modules, *encoder, output, streamer, backend);
    for (const auto& vector : vector_shapes(source.config)) {
      output.add(
          vector_tensor(vector.name, vector_values(checkpoint, vector), source.config.dtype));
    }
  }
  output.commit(encoder->config(without_quantization(source.config.raw)), encoder->json_files(),
                model_dir);
  report.seconds = seconds_since(start);
  return Quantizer(std::move(config), std::move(report));
}

}  // namespace uq
