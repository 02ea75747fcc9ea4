// `uq quantize MODEL -o OUT [--bits N] [--backend B] ...`: quantize a Hugging
// Face model and save it in the backend's layout, with a per-layer summary.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/backend_manager.hpp"
#include "api/memory_budget.hpp"
#include "api/quantize.hpp"
#include "api/streaming_quantize.hpp"
#include "commands.hpp"
#include "core/error.hpp"
#include "model/decoder.hpp"
#include "parse_integer.hpp"
#include "run_options.hpp"

namespace uq::cli {
namespace {

// "PATTERN=BITS" → (PATTERN, BITS); the pattern may itself hold '=' (regexes).
std::pair<std::string, int> parse_layer_bits(const std::string& text) {
  const auto equals = text.rfind('=');
  if (equals == std::string::npos || equals == 0 || equals + 1 == text.size()) {
    fail("option --layer-bits '", text, "': expected PATTERN=BITS");
  }
  const std::string bits_text = text.substr(equals + 1);
  const auto bits = parse_integer<int>(bits_text);
  if (!bits) fail("option --layer-bits '", text, "': '", bits_text, "' is not a number");
  return {text.substr(0, equals), *bits};
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024.0 && unit < 4) {
    bytes /= 1024.0;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.2f %s", bytes, units[unit]);
  return text;
}

void print_summary(const QuantizationReport& report, const std::string& out) {
  std::printf("backend: %s on %s (%s)\n", report.backend.c_str(), report.device.c_str(),
              report.backend_reason.c_str());
  std::printf("%-44s %-16s %12s %12s\n", "module", "scheme", "params", "bytes");
  std::size_t total_bytes = 0;
  for (const auto& layer : report.layers) {
    std::printf("%-44s %-16s %12lld %12s", layer.path.c_str(), layer.scheme.c_str(),
                static_cast<long long>(layer.parameters),
                human_bytes(static_cast<double>(layer.bytes)).c_str());
    if (layer.reconstruction_error >= 0.0) {
      std::printf("  %s %s error %.3g", layer.method.c_str(), layer.error_measure.c_str(),
                  layer.reconstruction_error);
    }
    std::printf("\n");
    total_bytes += layer.bytes;
  }
  std::printf("quantized %lld weights at %.3f bits each; matrices take %s; %.2f s\n",
              static_cast<long long>(report.quantized_parameters()),
              report.bits_per_quantized_weight(),
              human_bytes(static_cast<double>(total_bytes)).c_str(), report.seconds);
  std::printf("saved to %s\n", out.c_str());
}

}  // namespace

void register_quantize(CLI::App& app) {
  struct Options {
    std::string model, out;
    UnifiedQuantizationConfig config;
    std::vector<std::string> layer_bits;
    bool json = false;
    RunOptions run;
  };
  static Options options;
  auto& config = options.config;
  auto* command = app.add_subcommand("quantize", "Quantize a Hugging Face model and save it");
  command->add_option("MODEL", options.model, "Hugging Face model directory")->required();
  command->add_option("-o,--output", options.out, "Output directory")->required();
  command->add_option("--bits", config.bits, "Default bits per weight (1-8)")
      ->capture_default_str();
  command->add_option("--backend", config.backend, "mlx, quanto, bnb, custom (mps) or auto")
      ->capture_default_str();
  command->add_option("--group-size", config.group_size, "Weights per scale/bias group")
      ->capture_default_str();
  command->add_option("--method", config.method, "rtn, gptq, awq or hqq")->capture_default_str();
  command
      ->add_option("--bnb-4bit-quant-type", config.bnb_4bit_quant_type,
                   "bnb 4-bit codes: nf4 or fp4")
      ->capture_default_str();
  command->add_flag("--bnb-no-double-quant{false}", config.bnb_4bit_use_double_quant,
                    "bnb 4-bit: keep the absmax in fp32 instead of double quantizing it");
  command
      ->add_option("--weights", config.quanto_weights,
                   "quanto weight qtype: qint (of --bits), qfloat8 (= qfloat8_e4m3fn) or "
                   "qfloat8_e5m2 (--bits 8)")
      ->capture_default_str();
  command
      ->add_option("--activations", config.quanto_activations,
                   "quanto activation qtype: none, qint8, qfloat8 (= qfloat8_e4m3fn) or "
                   "qfloat8_e5m2; scales calibrated on --calibration-data")
      ->capture_default_str();
  command->add_option("--layer-bits", options.layer_bits,
                      "PATTERN=BITS for matching modules (repeatable; 0 or 16 keeps float)");
  command->add_option("--skip", config.skip, "Keep modules matching PATTERN in float (repeatable)");
  command->add_option("--calibration-data", config.calibration_data, "Text file for calibration");
  command->add_option("--calibration-samples", config.calibration_samples, "Calibration windows")
      ->capture_default_str();
  command->add_option("--calibration-ctx", config.calibration_ctx, "Tokens per calibration window")
      ->capture_default_str();
  command->add_option("--seed", config.seed, "Seed that picks the calibration windows")
      ->capture_default_str();
  command->add_flag("--act-order", config.act_order,
                    "gptq: quantize columns by decreasing activation energy");
  command->add_flag("--memory-efficient", config.memory_efficient,
                    "Stream matrices from disk straight into the output, never holding the float "
                    "model (chosen automatically when the model would not fit in memory)");
  command->add_option("--chunk-size", config.chunk_size, "Rows per streamed chunk")
      ->capture_default_str();
  command->add_flag("--json", options.json, "Print one JSON object on stdout");
  add_run_options(*command, options.run);
  command->callback([] {
    apply_run_options(options.run);
    auto& cfg = options.config;
    cfg.device = options.run.device;
    for (const auto& entry : options.layer_bits) {
      const auto [pattern, bits] = parse_layer_bits(entry);
      cfg.layer_bits[pattern] = bits;
    }
    const std::filesystem::path model_dir(options.model);
    validate(cfg);  // fail on bad options before reading a large model
    const auto too_large = cfg.memory_efficient ? std::nullopt : streaming_reason(model_dir);
    const Quantizer quantizer = [&] {
      if (!cfg.memory_efficient && !too_large) {
        auto [model, in_memory] = quantize_model(model_dir, cfg);
        in_memory.save_model(*model, options.out);
        return in_memory;
      }
      cfg.memory_efficient = true;
      return quantize_to_directory(model_dir, options.out, cfg, too_large.value_or(""));
    }();
    const auto& report = quantizer.report();
    for (const auto& warning : report.warnings)
      std::fprintf(stderr, "warning: %s\n", warning.c_str());
    if (!options.json) {
      print_summary(report, options.out);
      return;
    }
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& layer : report.layers) {
      layers.push_back({{"path", layer.path},
                        {"scheme", layer.scheme},
                        {"bits", layer.bits},
                        {"parameters", layer.parameters},
                        {"bytes", layer.bytes},
                        {"note", layer.note},
                        {"method", layer.method},
                        {"reconstruction_error", layer.reconstruction_error < 0.0
                                                     ? nlohmann::json()
                                                     : nlohmann::json(layer.reconstruction_error)},
                        {"error_measure", layer.error_measure}});
    }
    const nlohmann::json summary = {{"output", options.out},
                                    {"quanto_weights", quantizer.config().quanto_weights},
                                    {"quanto_activations", quantizer.config().quanto_activations},
                                    {"backend", report.backend},
                                    {"backend_reason", report.backend_reason},
                                    {"device", report.device},
                                    {"bits", quantizer.config().effective_bits()},
                                    {"group_size", quantizer.config().group_size},
                                    {"quantized_parameters", report.quantized_parameters()},
                                    {"bits_per_weight", report.bits_per_quantized_weight()},
                                    {"seconds", report.seconds},
                                    {"streamed", quantizer.config().memory_efficient},
                                    {"peak_rss_bytes", process_peak_bytes()},
                                    {"warnings", report.warnings},
                                    {"method", quantizer.config().method},
                                    {"calibration_device", report.calibration_device},
                                    {"not_calibrated", report.not_calibrated},
                                    {"layers", layers}};
    std::printf("%s\n", summary.dump().c_str());
  });
}

}  // namespace uq::cli
