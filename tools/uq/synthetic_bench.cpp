#include "synthetic_bench.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.hpp"
#include "io/hf_config.hpp"
#include "model/decoder.hpp"
#include "model/device_placement.hpp"
#include "model/synthetic_model.hpp"
#include "parse_integer.hpp"

#if defined(UQ_HAVE_CUDA)
#include "kernels/cuda/copy_bandwidth.hpp"
#include "kernels/cuda/cuda_model.hpp"
#endif

namespace uq::cli {
namespace {

constexpr int kPromptRuns = 3;

int parse_format(const std::string& format) {
  if (format == "bf16") return 16;
  if (format.size() == 1 && format[0] >= '2' && format[0] <= '8') return format[0] - '0';
  fail("option --formats: '", format, "' is not bf16 or a bit width 2..8");
}

std::string format_name(const std::string& format, int group_size) {
  return format == "bf16" ? "bf16" : "affine b" + format + " g" + std::to_string(group_size);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Bytes one decode step must read: every weight matrix except the embedding, of which it
// reads one row.
double decode_bytes(const Model& model) {
  double bytes = 0.0;
  for (const auto& [path, weight] : model.named_weights()) {
    if (path != "model.embed_tokens" || model.config().tie_word_embeddings) {
      bytes += static_cast<double>(weight->storage_bytes());
    }
  }
  return bytes;
}

struct Row {
  std::string format;
  std::string device;
  double weight_gib = 0.0;
  double prompt_tokens_per_second = 0.0;
  double decode_tokens_per_second = 0.0;
  double ceiling_tokens_per_second = 0.0;  // 0 where no bandwidth was measured
};

Row measure(const SyntheticBenchOptions& options, const std::string& format, double bandwidth) {
  SyntheticModelOptions synthetic;
  synthetic.preset = options.preset;
  synthetic.layers = options.layers;
  synthetic.bits = parse_format(format);
  synthetic.group_size = options.group_size;
  const std::shared_ptr<Model> model = make_synthetic_model(synthetic);
  const double bytes = decode_bytes(*model);
  const PlacedModel placed = place_model(model, options.device);
  const ModelConfig& config = model->config();
  if (options.prompt_tokens + options.decode_tokens + 2 > config.max_position_embeddings) {
    fail("option --input-shape: prompt plus decode tokens exceed the preset's positions");
  }
  std::mt19937 random(1);
  std::uniform_int_distribution<std::int32_t> token(
      0, static_cast<std::int32_t>(config.vocab_size - 1));
  std::vector<std::int32_t> prompt(static_cast<std::size_t>(options.prompt_tokens));
  for (auto& id : prompt) id = token(random);

  placed.model->start_sequence()->forward_greedy(prompt);  // warm-up
  std::vector<double> prompt_seconds;
  std::unique_ptr<ModelSequence> sequence;
  std::int32_t next = 0;
  for (int run = 0; run < kPromptRuns; ++run) {
    sequence = placed.model->start_sequence();
    const auto start = std::chrono::steady_clock::now();
    next = sequence->forward_greedy(prompt);
    prompt_seconds.push_back(seconds_since(start));
  }
  std::sort(prompt_seconds.begin(), prompt_seconds.end());
  next = sequence->forward_greedy(std::span<const std::int32_t>(&next, 1));  // warm-up step
  const auto start = std::chrono::steady_clock::now();
  for (std::int64_t step = 0; step < options.decode_tokens; ++step) {
    next = sequence->forward_greedy(std::span<const std::int32_t>(&next, 1));
  }
  const double decode_seconds = seconds_since(start);

  Row row;
  row.format = format_name(format, options.group_size);
  row.device = placed.device;
  row.weight_gib = bytes / double(1 << 30);
  row.prompt_tokens_per_second =
      static_cast<double>(options.prompt_tokens) / prompt_seconds[prompt_seconds.size() / 2];
  row.decode_tokens_per_second = static_cast<double>(options.decode_tokens) / decode_seconds;
  if (placed.device == "cuda") row.ceiling_tokens_per_second = bandwidth / bytes;
  return row;
}

#if defined(UQ_HAVE_CUDA)
constexpr int kProfileRepetitions = 100;

// Per stage of a decode step: calls per step and device microseconds per call and per step,
// at each context; `uq bench --profile-decode`.
void profile_decode(const SyntheticBenchOptions& options, const std::string& format) {
  SyntheticModelOptions synthetic;
  synthetic.preset = options.preset;
  synthetic.layers = options.layers;
  synthetic.bits = parse_format(format);
  synthetic.group_size = options.group_size;
  const auto gpu = std::make_shared<cuda::CudaModel>(make_synthetic_model(synthetic));
  std::vector<std::vector<cuda::StageTime>> columns;
  for (const int context : options.profile_contexts) {
    columns.push_back(gpu->profile_decode(context, kProfileRepetitions));
  }
  const std::string name = format_name(format, options.group_size);
  if (options.json) {
    nlohmann::json report = {{"preset", options.preset}, {"format", name}, {"contexts", {}}};
    for (std::size_t c = 0; c < columns.size(); ++c) {
      nlohmann::json stages = nlohmann::json::array();
      for (const auto& stage : columns[c]) {
        stages.push_back({{"stage", stage.stage},
                          {"calls", stage.calls},
                          {"microseconds_per_step", stage.microseconds}});
      }
      report["contexts"].push_back({{"context", options.profile_contexts[c]}, {"stages", stages}});
    }
    std::printf("%s\n", report.dump().c_str());
    return;
  }
  std::printf("\ndecode step of synthetic %s, %s: device us (graph replay, mean of %d)\n",
              options.preset.c_str(), name.c_str(), kProfileRepetitions);
  std::printf("%-22s %5s", "stage", "calls");
  for (const int context : options.profile_contexts) {
    std::printf(" %10s %10s", ("ctx " + std::to_string(context)).c_str(), "per call");
  }
  std::printf("\n");
  std::vector<double> totals(columns.size(), 0.0);
  for (std::size_t s = 0; s < columns.front().size(); ++s) {
    const cuda::StageTime& first = columns.front()[s];
    std::printf("%-22s %5d", first.stage.c_str(), first.calls);
    for (std::size_t c = 0; c < columns.size(); ++c) {
      const cuda::StageTime& stage = columns[c][s];
      totals[c] += stage.microseconds;
      std::printf(" %10.1f %10.2f", stage.microseconds, stage.microseconds / stage.calls);
    }
    std::printf("\n");
  }
  std::printf("%-22s %5s", "step", "");
  for (const double total : totals) std::printf(" %10.1f %10s", total, "");
  std::printf("\n%-22s %5s", "tokens/s", "");
  for (const double total : totals) std::printf(" %10.1f %10s", 1e6 / total, "");
  std::printf("\n");
}
#endif

}  // namespace

int parse_profile_context(const std::string& text) {
  const auto value = parse_integer<int>(text);
  if (!value || *value < 1) {
    fail("option --profile-decode: '", text, "' is not a positive context length");
  }
  return *value;
}

void run_synthetic_bench(const SyntheticBenchOptions& options) {
  if (options.formats.empty()) fail("option --formats: no format given");
  for (const auto& format : options.formats) parse_format(format);
  if (!options.profile_contexts.empty()) {
#if defined(UQ_HAVE_CUDA)
    if (options.device != "cuda" || !cuda_available()) {
      fail("option --profile-decode: needs --device cuda and a GPU");
    }
    for (const auto& format : options.formats) profile_decode(options, format);
    return;
#else
    fail("option --profile-decode: this build has no CUDA");
#endif
  }
  double bandwidth = 0.0;
#if defined(UQ_HAVE_CUDA)
  if (options.device != "cpu" && cuda_available()) bandwidth = cuda::measure_copy_bandwidth();
#endif
  std::vector<Row> rows;
  for (const auto& format : options.formats) rows.push_back(measure(options, format, bandwidth));
  if (options.json) {
    nlohmann::json report = {{"preset", options.preset},
                             {"prompt_tokens", options.prompt_tokens},
                             {"decode_tokens", options.decode_tokens},
                             {"copy_bandwidth_gb_per_s", bandwidth / 1e9},
                             {"rows", nlohmann::json::array()}};
    for (const auto& row : rows) {
      report["rows"].push_back(
          {{"format", row.format},
           {"device", row.device},
           {"decode_weight_gib", row.weight_gib},
           {"prompt_tokens_per_second", row.prompt_tokens_per_second},
           {"decode_tokens_per_second", row.decode_tokens_per_second},
           {"decode_ceiling_tokens_per_second", row.ceiling_tokens_per_second}});
    }
    std::printf("%s\n", report.dump().c_str());
    return;
  }
  std::printf("synthetic %s: prompt %lld tokens, decode %lld tokens at batch 1\n",
              options.preset.c_str(), static_cast<long long>(options.prompt_tokens),
              static_cast<long long>(options.decode_tokens));
  if (bandwidth > 0.0) std::printf("measured copy bandwidth %.0f GB/s\n", bandwidth / 1e9);
  std::printf("%-16s %-6s %12s %12s %12s %14s %8s\n", "format", "device", "weights GiB",
              "prompt tok/s", "decode tok/s", "ceiling tok/s", "of ceil");
  for (const auto& row : rows) {
    std::printf("%-16s %-6s %12.2f %12.1f %12.1f", row.format.c_str(), row.device.c_str(),
                row.weight_gib, row.prompt_tokens_per_second, row.decode_tokens_per_second);
    if (row.ceiling_tokens_per_second > 0.0) {
      std::printf(" %14.1f %7.1f%%\n", row.ceiling_tokens_per_second,
                  100.0 * row.decode_tokens_per_second / row.ceiling_tokens_per_second);
    } else {
      std::printf(" %14s %8s\n", "-", "-");
    }
  }
}

}  // namespace uq::cli
