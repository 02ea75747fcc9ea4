// `uq bench MODEL [--input-shape 1,512] [--bits 4] [--backends LIST] [--device D]
// [--plot FILE.svg|.png]... [--json]`: the float model and every backend measured side by side
// on each selected device (compare_backends).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "api/compare_backends.hpp"
#include "api/comparison_chart.hpp"
#include "api/svg_to_png.hpp"
#include "commands.hpp"
#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "model/decoder.hpp"
#include "parse_integer.hpp"
#include "run_options.hpp"
#include "synthetic_bench.hpp"

namespace uq::cli {
namespace {

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

std::vector<std::int64_t> parse_input_shape(const std::string& text) {
  std::vector<std::int64_t> shape;
  for (const auto& item : split_list(text)) {
    const auto value = parse_integer<std::int64_t>(item);
    if (!value || *value < 1) {
      fail("option --input-shape '", text, "': '", item, "' is not a positive number");
    }
    shape.push_back(*value);
  }
  if (shape.size() != 2) fail("option --input-shape '", text, "': expected BATCH,SEQUENCE");
  return shape;
}

nlohmann::json comparison_json(const BackendComparison& comparison, const std::string& model) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& row : comparison.rows) {
    rows.push_back({{"backend", row.backend},
                    {"device", row.device},
                    {"scheme", row.scheme},
                    {"quantize_seconds", row.quantize_seconds},
                    {"disk_mib", row.disk_mib},
                    {"bits_per_weight", row.bits_per_weight},
                    {"weights_mib", row.weights_mib},
                    {"peak_memory_mib", row.peak_memory_mib},
                    {"process_peak_mib", row.process_peak_mib},
                    {"prompt_tokens_per_second", row.prompt_tokens_per_second},
                    {"decode_tokens_per_second", row.decode_tokens_per_second},
                    {"perplexity", row.perplexity},
                    {"cosine_similarity", row.cosine_similarity},
                    {"kl_divergence", row.kl_divergence}});
  }
  nlohmann::json skipped = nlohmann::json::array();
  for (const auto& skip : comparison.skipped) {
    skipped.push_back(
        {{"backend", skip.backend}, {"device", skip.device}, {"reason", skip.reason}});
  }
  return {{"model", model},
          {"input_shape", {comparison.batch, comparison.sequence}},
          {"bits", comparison.bits},
          {"devices", comparison.devices},
          {"data", comparison.data},
          {"ctx", comparison.ctx},
          {"eval_windows", comparison.eval_windows},
          {"eval_tokens", comparison.eval_tokens},
          {"rows", rows},
          {"skipped", skipped}};
}

// Refuses a chart path before the minutes of measuring, not after.
void check_plot_path(const std::string& plot) {
  const auto extension = std::filesystem::path(plot).extension();
  if (extension != ".svg" && extension != ".png") {
    fail("option --plot '", plot, "': charts are written as .svg or .png");
  }
  if (extension == ".png" && !png_rendering_available()) {
    fail("option --plot '", plot, "': this build writes SVG charts only (built without librsvg)");
  }
}

void print_table(const BackendComparison& comparison) {
  std::printf(
      "%d-bit comparison; prompt %lldx%lld; perplexity over %lld tokens (%lld windows of %lld)\n\n",
      comparison.bits, static_cast<long long>(comparison.batch),
      static_cast<long long>(comparison.sequence), static_cast<long long>(comparison.eval_tokens),
      static_cast<long long>(comparison.eval_windows), static_cast<long long>(comparison.ctx));
  // Backend and scheme columns as wide as their longest entry, so the numbers line up.
  int backend_width = 7, scheme_width = 6;
  for (const auto& row : comparison.rows) {
    backend_width = std::max(backend_width, static_cast<int>(row.backend.size()));
    scheme_width = std::max(scheme_width, static_cast<int>(row.scheme.size()));
  }
  std::printf("%-*s %-4s %-*s %8s %9s %6s %9s %9s %10s %10s %9s %9s %10s\n", backend_width,
              "backend", "dev", scheme_width, "scheme", "quant s", "disk MiB", "bits/w", "peak MiB",
              "RSS MiB", "prompt t/s", "decode t/s", "ppl", "cosine", "KL");
  for (const auto& row : comparison.rows) {
    std::printf("%-*s %-4s %-*s %8.3f %9.3f %6.3f %9.2f %9.1f %10.0f %10.1f %9.3f %9.6f %10.3g\n",
                backend_width, row.backend.c_str(), row.device.c_str(), scheme_width,
                row.scheme.c_str(), row.quantize_seconds, row.disk_mib, row.bits_per_weight,
                row.peak_memory_mib, row.process_peak_mib, row.prompt_tokens_per_second,
                row.decode_tokens_per_second, row.perplexity, row.cosine_similarity,
                row.kl_divergence);
  }
  for (const auto& skip : comparison.skipped) {
    std::printf("skipped %s on %s: %s\n", skip.backend.c_str(), skip.device.c_str(),
                skip.reason.c_str());
  }
  std::printf(
      "\npeak MiB: cpu rows: the model's weights + the process's peak rise (VmHWM) while\n"
      "running it; cuda rows: the rise of GPU memory in use (driver) from before the upload.\n"
      "RSS MiB: the process's peak resident set over the row. disk MiB: safetensors files.\n"
      "Quantization runs on the CPU. cosine, KL: vs the float model's logits on the CPU;\n"
      "KL: mean KL(float || backend) per predicted token.\n");
}

}  // namespace

void register_bench(CLI::App& app) {
  struct Options {
    std::string model;
    std::string input_shape = "1,512";
    int bits = 4;
    std::string backends;
    std::vector<std::string> plots;
    bool json = false;
    CompareOptions compare;
    std::string data = "data/val.txt";
    RunOptions run;
    std::string synthetic;
    std::int64_t synthetic_layers = 0;
    std::string formats = "bf16,8,4,3";
    std::string profile_decode;
  };
  static Options options;
  auto* command =
      app.add_subcommand("bench", "Compare the float model with every backend on this machine");
  command->add_option("MODEL", options.model, "Hugging Face model directory");
  command
      ->add_option("--synthetic", options.synthetic,
                   "Instead of MODEL: prompt/decode speed of random weights of this preset's "
                   "shape (llama3-8b, llama2-7b, tiny), generated in memory")
      ->excludes("MODEL");
  command->add_option("--layers", options.synthetic_layers,
                      "With --synthetic: decoder layers (default: the preset's)");
  command
      ->add_option("--formats", options.formats,
                   "With --synthetic: comma-separated formats, bf16 or bits (affine)")
      ->capture_default_str();
  command->add_option("--profile-decode", options.profile_decode,
                      "With --synthetic --device cuda: device time of each stage of a decode "
                      "step after each of these comma-separated context lengths");
  command->add_option("--input-shape", options.input_shape, "BATCH,SEQUENCE of the timed prompt")
      ->capture_default_str();
  command->add_option("--bits", options.bits, "Bits per weight")->capture_default_str();
  command->add_option("--backends", options.backends, "Comma-separated backends (default: all)");
  command->add_option("--group-size", options.compare.group_size, "Weights per scale/bias group")
      ->capture_default_str();
  command
      ->add_option("--data", options.data,
                   "Validation text for perplexity, cosine and KL (default: data/val.txt "
                   "under the current directory, the repository's validation text)")
      ->capture_default_str();
  command->add_option("--ctx", options.compare.ctx, "Perplexity window in tokens")
      ->capture_default_str();
  command
      ->add_option("--eval-windows", options.compare.eval_windows,
                   "Windows evaluated at most (0: the whole text)")
      ->capture_default_str();
  command
      ->add_option("--decode-tokens", options.compare.decode_tokens, "Tokens timed one at a time")
      ->capture_default_str();
  command->add_option("--plot", options.plots,
                      "Write the chart to FILE.svg or FILE.png (repeat for both)");
  command->add_flag("--json", options.json, "Print one JSON object on stdout");
  add_run_options(*command, options.run);
  command->get_option("--device")
      ->description(
          "cpu, cuda, auto (each model on the GPU when it can run there) or all (one row per "
          "model on every usable device)");
  command->callback([] {
    RunOptions run = options.run;
    // "all" is bench's alone (compare_backends checks it); the rest of the run options apply.
    if (run.device == "all") run.device = "cpu";
    apply_run_options(run);
    for (const auto& plot : options.plots) check_plot_path(plot);
    const auto shape = parse_input_shape(options.input_shape);
    if (!options.synthetic.empty()) {
      if (shape[0] != 1) fail("option --input-shape: --synthetic measures batch 1");
      SyntheticBenchOptions synthetic;
      synthetic.preset = options.synthetic;
      synthetic.layers = options.synthetic_layers;
      synthetic.formats = split_list(options.formats);
      synthetic.group_size = options.compare.group_size;
      synthetic.prompt_tokens = shape[1];
      synthetic.decode_tokens = options.compare.decode_tokens;
      synthetic.device = options.run.device;
      synthetic.json = options.json;
      for (const auto& context : split_list(options.profile_decode)) {
        synthetic.profile_contexts.push_back(parse_profile_context(context));
      }
      run_synthetic_bench(synthetic);
      return;
    }
    if (options.model.empty()) fail("uq bench: give MODEL or --synthetic PRESET");
    if (!std::filesystem::is_regular_file(options.data)) {
      fail("option --data: '", options.data, "' is not a file (give a validation text)");
    }
    options.compare.data = options.data;
    options.compare.backends = split_list(options.backends);
    options.compare.device = options.run.device;
    const auto model = load_model(options.model);
    const BackendComparison comparison =
        compare_backends(model, shape, options.bits, options.compare);
    if (!options.plots.empty()) {
      const std::string svg = comparison_chart_svg(comparison);
      for (const auto& plot : options.plots) {
        write_file_atomic(
            plot, std::filesystem::path(plot).extension() == ".png" ? svg_to_png(svg) : svg);
      }
    }
    if (options.json) {
      std::printf("%s\n", comparison_json(comparison, options.model).dump().c_str());
    } else {
      print_table(comparison);
      for (const auto& plot : options.plots) std::printf("chart written to %s\n", plot.c_str());
    }
  });
}

}  // namespace uq::cli
