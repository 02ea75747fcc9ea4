#include "api/compare_backends.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "api/backend.hpp"
#include "api/backend_manager.hpp"
#include "api/metrics.hpp"
#include "api/quantize.hpp"
#include "core/error.hpp"
#include "core/progress.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "model/decoder.hpp"
#include "model/device_placement.hpp"
#include "model/perplexity.hpp"

namespace uq {
namespace {

constexpr double kBytesPerMib = 1024.0 * 1024.0;
constexpr std::int64_t kDecodePromptTokens = 16;
constexpr const char* kSampledData = "sampled from the float model (temperature 1, seeds 0..)";

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("option data: cannot open '", path.string(), "'");
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().empty()) fail("option data: '", path.string(), "' is empty");
  return text.str();
}

std::int64_t safetensors_bytes(const std::filesystem::path& dir) {
  std::int64_t bytes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".safetensors") {
      bytes += static_cast<std::int64_t>(entry.file_size());
    }
  }
  return bytes;
}

// Weight matrices' storage: bytes, elements, and the scheme holding most elements.
struct WeightStorage {
  double bytes = 0.0;
  double elements = 0.0;
  std::string scheme;
};

WeightStorage weight_storage(const Model& model) {
  WeightStorage storage;
  std::map<std::string, double> elements_by_scheme;
  for (const auto& [path, weight] : model.named_weights()) {
    const auto elements = static_cast<double>(weight->out_features() * weight->in_features());
    storage.bytes += static_cast<double>(weight->storage_bytes());
    storage.elements += elements;
    elements_by_scheme[weight->describe()] += elements;
  }
  storage.scheme =
      std::max_element(elements_by_scheme.begin(), elements_by_scheme.end(),
                       [](const auto& a, const auto& b) { return a.second < b.second; })
          ->first;
  return storage;
}

// Peak resident memory over a span of work, relative to the resident set at its start.
class PeakMemoryProbe {
 public:
  PeakMemoryProbe() : peak_reset_(reset_process_peak()), start_rss_(process_rss_bytes()) {}
  // Without a resettable peak only the resident set at the end can be measured.
  double rise_mib() const {
    const std::int64_t end = peak_reset_ ? process_peak_bytes() : process_rss_bytes();
    return static_cast<double>(std::max<std::int64_t>(end - start_rss_, 0)) / kBytesPerMib;
  }

 private:
  bool peak_reset_;
  std::int64_t start_rss_;
};

// The inputs every row is measured on, and the float model's logits to compare with.
struct Workload {
  std::vector<std::int32_t> eval_ids;  // whole windows of ctx
  std::vector<std::int32_t> prompt;    // one sequence of input_shape
  std::vector<std::int32_t> decode_prompt;
  std::int64_t batch = 1, ctx = 0, vocab = 0, decode_tokens = 0;
  std::vector<std::vector<float>> reference_logits;  // per window, predicted rows only
};

// Warm-up steps before decode is timed: the first step of a GPU sequence runs eagerly and
// captures its CUDA graph, the second replays it once.
constexpr std::int64_t kDecodeWarmupSteps = 2;

// The largest GPU memory in use seen at the probe's readings, relative to before the upload.
class DeviceMemoryProbe {
 public:
  explicit DeviceMemoryProbe(bool on_gpu)
      : on_gpu_(on_gpu), before_(on_gpu ? cuda_memory_used_bytes() : 0), peak_(before_) {}
  void sample() {
    if (on_gpu_) peak_ = std::max(peak_, cuda_memory_used_bytes());
  }
  double rise_mib() const { return static_cast<double>(peak_ - before_) / kBytesPerMib; }

 private:
  bool on_gpu_;
  std::int64_t before_;
  std::int64_t peak_;
};

class Measurement {
 public:
  Measurement(const Workload& work, Progress& progress, std::string label)
      : work_(work), progress_(progress), label_(std::move(label)) {}

  // Places `model` on `device` and fills the device, speed, accuracy and memory fields;
  // weights_mib must be set.
  void run(const std::shared_ptr<const Model>& model, const std::string& device,
           ComparisonRow& row) {
    const PeakMemoryProbe probe;
    DeviceMemoryProbe device_memory(device != "cpu" && cuda_available());
    const PlacedModel placed = place_model(model, device);
    const CausalLM& runner = *placed.model;
    row.device = placed.device;
    device_memory.sample();

    runner.forward(work_.prompt, LogitsMode::Last);  // warm-up: threads, caches, workspaces
    // The decoder runs one sequence per call: a batch is its sequences back to back.
    std::unique_ptr<ModelSequence> sequence;
    const auto prompt_start = std::chrono::steady_clock::now();
    for (std::int64_t b = 0; b < work_.batch; ++b) {
      sequence = runner.start_sequence();
      sequence->forward(work_.prompt, LogitsMode::Last);
    }
    row.prompt_tokens_per_second =
        static_cast<double>(work_.batch * static_cast<std::int64_t>(work_.prompt.size())) /
        seconds_since(prompt_start);
    device_memory.sample();  // the last prompt's KV cache is still held

    sequence = runner.start_sequence();
    std::int32_t next = sequence->forward_greedy(work_.decode_prompt);
    const auto step = [&] {
      next = sequence->forward_greedy(std::span<const std::int32_t>(&next, 1));
    };
    for (std::int64_t i = 0; i < kDecodeWarmupSteps; ++i) step();
    const auto decode_start = std::chrono::steady_clock::now();
    for (std::int64_t i = 0; i < work_.decode_tokens; ++i) step();
    row.decode_tokens_per_second =
        static_cast<double>(work_.decode_tokens) / seconds_since(decode_start);
    device_memory.sample();
    sequence.reset();
    progress_.advance(1, label_ + ": evaluating");

    double cosine_sum = 0.0, kl_sum = 0.0;
    std::int64_t rows = 0;
    std::size_t window = 0;
    const PerplexityResult result =
        perplexity(runner, work_.eval_ids, work_.ctx,
                   [&](std::span<const std::int32_t> ids, std::span<const float> logits) {
                     device_memory.sample();
                     const auto predicted_rows = static_cast<std::int64_t>(ids.size()) - 1;
                     const auto predicted =
                         logits.first(static_cast<std::size_t>(predicted_rows * work_.vocab));
                     const std::span<const float> reference = work_.reference_logits.at(window++);
                     cosine_sum += cosine_similarity(reference, predicted);
                     kl_sum += mean_kl_divergence(reference, predicted, work_.vocab) *
                               static_cast<double>(predicted_rows);
                     rows += predicted_rows;
                     progress_.advance(1, label_ + ": evaluating");
                   });
    row.perplexity = result.perplexity;
    row.cosine_similarity = cosine_sum / static_cast<double>(result.windows);
    row.kl_divergence = kl_sum / static_cast<double>(rows);
    row.peak_memory_mib =
        row.device == "cuda" ? device_memory.rise_mib() : row.weights_mib + probe.rise_mib();
    row.process_peak_mib = static_cast<double>(process_peak_bytes()) / kBytesPerMib;
  }

 private:
  const Workload& work_;
  Progress& progress_;
  std::string label_;
};

// Taken before any row is measured, so that no row's peak memory holds them.
void record_reference_logits(const Model& model, Workload& work) {
  perplexity(model, work.eval_ids, work.ctx,
             [&](std::span<const std::int32_t> ids, std::span<const float> logits) {
               const auto predicted = (static_cast<std::int64_t>(ids.size()) - 1) * work.vocab;
               work.reference_logits.emplace_back(logits.begin(), logits.begin() + predicted);
             });
}

// Text for a comparison that was given none: windows of `ctx` tokens sampled
// from the float model itself (temperature 1, seed = window index), each
// starting from its first BOS id. Perplexity on it measures how well a
// quantized model keeps the original's own distribution.
std::vector<std::int32_t> sampled_ids(const Model& model, std::int64_t windows, std::int64_t ctx) {
  const auto& bos = model.config().bos_token_ids;
  const std::int32_t start = bos.empty() ? 0 : bos.front();
  std::vector<std::int32_t> ids;
  for (std::int64_t w = 0; w < windows; ++w) {
    GenerationOptions options;
    options.max_new_tokens = ctx - 1;
    options.sampling.temperature = 1.0f;
    options.sampling.seed = static_cast<std::uint64_t>(w);
    options.stop_at_eos = false;
    const std::vector<std::int32_t> prompt{start};
    const auto window = generate(model, prompt, options).ids;
    ids.insert(ids.end(), window.begin(), window.end());
  }
  return ids;
}

Workload prepare_workload(const Model& model, const std::vector<std::int64_t>& input_shape,
                          const CompareOptions& options) {
  const ModelConfig& config = model.config();
  if (input_shape.size() != 2 || input_shape[0] < 1 || input_shape[1] < 1) {
    fail("option input_shape: expected BATCH,SEQUENCE of positive numbers");
  }
  if (input_shape[1] > config.max_position_embeddings) {
    fail("option input_shape: sequence ", input_shape[1], " exceeds max_position_embeddings ",
         config.max_position_embeddings);
  }
  if (options.eval_windows < 0) fail("option eval_windows must be >= 0");
  if (options.decode_tokens < 1) fail("option decode_tokens must be >= 1");
  if (kDecodePromptTokens + kDecodeWarmupSteps + options.decode_tokens >
      config.max_position_embeddings) {
    fail("option decode_tokens: ", options.decode_tokens, " exceeds max_position_embeddings");
  }
  check_perplexity_ctx(config, options.ctx);
  std::vector<std::int32_t> ids;
  if (options.data.empty()) {
    ids = sampled_ids(model, options.eval_windows > 0 ? options.eval_windows : 4, options.ctx);
  } else {
    if (!model.tokenizer()) fail("compare_backends: the model was loaded without its tokenizer");
    ids = model.tokenizer()->encode(read_text(options.data));
  }
  if (static_cast<std::int64_t>(ids.size()) < options.ctx) {
    fail("option data: '", options.data.string(), "' has ", ids.size(),
         " tokens, fewer than one window of ctx ", options.ctx);
  }
  Workload work;
  work.batch = input_shape[0];
  work.ctx = options.ctx;
  work.vocab = config.vocab_size;
  work.decode_tokens = options.decode_tokens;
  // The prompt is real text, repeated when the file is shorter than the sequence.
  for (std::int64_t i = 0; i < input_shape[1]; ++i) {
    work.prompt.push_back(ids[static_cast<std::size_t>(i) % ids.size()]);
  }
  work.decode_prompt.assign(
      ids.begin(), ids.begin() + std::min<std::ptrdiff_t>(kDecodePromptTokens, std::ssize(ids)));
  std::int64_t windows = static_cast<std::int64_t>(ids.size()) / options.ctx;
  if (options.eval_windows > 0) windows = std::min(windows, options.eval_windows);
  ids.resize(static_cast<std::size_t>(windows * options.ctx));
  work.eval_ids = std::move(ids);
  return work;
}

std::vector<const Backend*> selected_backends(const CompareOptions& options) {
  std::vector<const Backend*> selected;
  if (options.backends.empty()) {
    for (const auto& backend : backends()) selected.push_back(backend.get());
    return selected;
  }
  for (const auto& name : options.backends) {
    const Backend* backend = find_backend(name);
    if (!backend)
      fail("option backends: unknown backend '", name, "' (known: ", known_backend_names(), ")");
    if (std::find(selected.begin(), selected.end(), backend) == selected.end())
      selected.push_back(backend);
  }
  return selected;
}

// A scratch directory for one saved model, removed at scope exit.
class ScratchDirectory {
 public:
  explicit ScratchDirectory(const std::string& name)
      : path_(std::filesystem::temp_directory_path() /
              ("uq-bench-" + std::to_string(getpid()) + "-" + name)) {
    std::filesystem::remove_all(path_);
  }
  ~ScratchDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Measures `model` on every device of the comparison: one row each, or a skipped entry saying
// why it cannot run there. `base` holds the device-independent fields.
void measure_on_devices(const std::shared_ptr<const Model>& model, const ComparisonRow& base,
                        const Workload& work, Progress& progress, BackendComparison& comparison) {
  const std::int64_t steps = 1 + comparison.eval_windows;
  for (const std::string& device : comparison.devices) {
    const std::string label =
        base.backend + (comparison.devices.size() > 1 ? " on " + device : std::string());
    std::optional<std::string> reason = device_unsupported_reason(*model, device);
    if (!reason) {
      ComparisonRow row = base;
      try {
        Measurement(work, progress, label).run(model, device, row);
        comparison.rows.push_back(row);
        continue;
      } catch (const Error& error) {
        reason = error.what();
      }
    }
    comparison.skipped.push_back({base.backend, device, *reason});
    progress.advance(steps, label + ": skipped");
  }
}

}  // namespace

std::vector<std::string> comparison_devices(const std::string& device) {
  if (device == "all") {
    std::vector<std::string> devices{"cpu"};
    if (cuda_available()) devices.emplace_back("cuda");
    return devices;
  }
  check_device_option(device);
  return {device};
}

BackendComparison compare_backends(const std::shared_ptr<const Model>& model,
                                   const std::vector<std::int64_t>& input_shape, int bits,
                                   const CompareOptions& options) {
  if (!model) fail("compare_backends: no model given");
  if (bits < 1 || bits > 8) fail("option bits: ", bits, " is outside 1..8");
  const std::vector<std::string> devices = comparison_devices(options.device);
  const std::vector<const Backend*> selected = selected_backends(options);
  Workload work = prepare_workload(*model, input_shape, options);
  record_reference_logits(*model, work);
  const auto windows = static_cast<std::int64_t>(work.eval_ids.size()) / work.ctx;

  BackendComparison comparison;
  comparison.batch = input_shape[0];
  comparison.sequence = input_shape[1];
  comparison.bits = bits;
  comparison.data = options.data.empty() ? std::string(kSampledData) : options.data.string();
  comparison.ctx = work.ctx;
  comparison.eval_windows = windows;
  comparison.eval_tokens = windows * (work.ctx - 1);
  comparison.devices = devices;

  // Per model: quantized (1), then per device: speed (1) and each window.
  const std::int64_t device_steps = static_cast<std::int64_t>(devices.size()) * (1 + windows);
  Progress progress("bench", static_cast<std::int64_t>(1 + selected.size()) * (1 + device_steps));
  {
    ComparisonRow row;
    row.backend = "float";
    const WeightStorage storage = weight_storage(*model);
    row.scheme = storage.scheme;
    row.bits_per_weight = 8.0 * storage.bytes / storage.elements;
    row.weights_mib = storage.bytes / kBytesPerMib;
    const auto& source = model->source_directory();
    const std::int64_t on_disk = source.empty() ? 0 : safetensors_bytes(source);
    // A model built in memory has no files: its in-memory weights stand in.
    row.disk_mib = on_disk > 0 ? static_cast<double>(on_disk) / kBytesPerMib : row.weights_mib;
    progress.advance(1, "float");
    measure_on_devices(model, row, work, progress, comparison);
  }
  for (const Backend* backend : selected) {
    const BackendSpec& spec = backend->spec();
    const auto skip_everywhere = [&](const std::string& reason) {
      for (const auto& device : devices) comparison.skipped.push_back({spec.name, device, reason});
      progress.advance(1 + device_steps, spec.name + ": skipped");
    };
    if (std::find(spec.bits.begin(), spec.bits.end(), bits) == spec.bits.end()) {
      std::string supported;
      for (int b : spec.bits) supported += (supported.empty() ? "" : ", ") + std::to_string(b);
      skip_everywhere("writes " + supported + " bits, not " + std::to_string(bits));
      continue;
    }
    UnifiedQuantizationConfig config;
    config.backend = spec.name;
    config.bits = bits;
    config.group_size =
        spec.group_sizes.empty() || std::find(spec.group_sizes.begin(), spec.group_sizes.end(),
                                              options.group_size) != spec.group_sizes.end()
            ? options.group_size
            : spec.group_sizes.front();
    ComparisonRow row;
    row.backend = spec.name;
    std::shared_ptr<const Model> quantized;
    try {
      auto [model_out, quantizer] = quantize_model(model, config);
      quantized = std::move(model_out);
      row.quantize_seconds = quantizer.report().seconds;
      const ScratchDirectory scratch(spec.name);
      quantizer.save_model(*quantized, scratch.path());
      row.disk_mib = static_cast<double>(safetensors_bytes(scratch.path())) / kBytesPerMib;
    } catch (const Error& error) {
      skip_everywhere(error.what());
      continue;
    }
    const WeightStorage storage = weight_storage(*quantized);
    row.scheme = storage.scheme;
    row.bits_per_weight = 8.0 * storage.bytes / storage.elements;
    row.weights_mib = storage.bytes / kBytesPerMib;
    progress.advance(1, spec.name + ": quantized");
    measure_on_devices(quantized, row, work, progress, comparison);
  }
  return comparison;
}

}  // namespace uq
