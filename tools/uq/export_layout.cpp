#include "export_layout.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "api/backend.hpp"
#include "api/config.hpp"
#include "core/error.hpp"
#include "io/formats/layout_writer.hpp"
#include "model/decoder.hpp"
#include "model/float_weight.hpp"
#include "quant/affine_weight.hpp"
#include "quant/symmetric_weight.hpp"

namespace uq::cli {
namespace {

constexpr const char* kFormats[] = {"mlx", "quanto", "bnb", "custom"};

// The layouts' defaults that depend on the weights: mlx's top-level bits / group size (modules
// that differ get overrides) is the most common affine format, custom's bits its symmetric
// weights' width. Ties go to the first module's format, so the choice is stable.
UnifiedQuantizationConfig layout_config(const Model& model, const std::string& format) {
  UnifiedQuantizationConfig config;
  config.backend = format;
  std::map<std::pair<int, int>, int> affine_formats;
  std::pair<int, int> first_affine{0, 0};
  for (const auto& [path, weight] : model.named_weights()) {
    if (const auto* affine = dynamic_cast<const AffineWeight*>(weight.get())) {
      const std::pair<int, int> key{affine->bits(), affine->group_size()};
      if (affine_formats.empty()) first_affine = key;
      ++affine_formats[key];
    } else if (const auto* symmetric = dynamic_cast<const SymmetricWeight*>(weight.get())) {
      if (format == "custom") config.bits = symmetric->bits();
    }
  }
  if (!affine_formats.empty()) {
    std::pair<int, int> best = first_affine;
    for (const auto& [key, count] : affine_formats) {
      if (count > affine_formats[best]) best = key;
    }
    config.bits = best.first;
    config.group_size = best.second;
  }
  return config;
}

}  // namespace

std::string layout_export_formats() {
  std::string names;
  for (const char* name : kFormats) names += (names.empty() ? "" : ", ") + std::string(name);
  return names;
}

bool is_layout_export_format(const std::string& format) {
  for (const char* name : kFormats) {
    if (format == name) return true;
  }
  return false;
}

void export_layout(const std::string& model_path, const std::string& format,
                   const std::string& output, bool json) {
  const Backend* backend = find_backend(format);
  if (!is_layout_export_format(format) || backend == nullptr) {
    fail("option --format: '", format, "' is not supported (gguf, ", layout_export_formats(), ")");
  }
  std::error_code error;
  if (std::filesystem::equivalent(model_path, output, error)) {
    fail("option -o: '", output, "' is MODEL itself; export to another directory");
  }
  const auto start = std::chrono::steady_clock::now();
  const auto model = load_model(model_path);
  std::int64_t quantized = 0, total = 0;
  for (const auto& [path, weight] : model->named_weights()) {
    ++total;
    if (dynamic_cast<const FloatWeight*>(weight.get()) == nullptr) ++quantized;
  }
  if (quantized == 0) {
    fail(model_path,
         ": no quantized weights to export; quantize the float model instead (uq "
         "quantize MODEL --backend ",
         format, " -o OUT)");
  }
  const auto encoder = backend->encoder(model->config().dtype, layout_config(*model, format));
  save_layout(*model, output, *encoder);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (json) {
    const nlohmann::json report = {{"format", format},
                                   {"output", output},
                                   {"modules", total},
                                   {"quantized_modules", quantized},
                                   {"seconds", seconds}};
    std::printf("%s\n", report.dump().c_str());
  } else {
    std::printf("exported %lld modules (%lld quantized) in the %s layout in %.2f s\n",
                static_cast<long long>(total), static_cast<long long>(quantized), format.c_str(),
                seconds);
    std::printf("saved to %s\n", output.c_str());
  }
}

}  // namespace uq::cli
