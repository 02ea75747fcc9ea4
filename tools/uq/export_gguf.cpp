#include "export_gguf.hpp"

#include <chrono>
#include <cstdio>
#include <map>

#include "core/error.hpp"
#include "io/formats/gguf_model.hpp"
#include "model/decoder.hpp"

namespace uq::cli {

void export_gguf_command(const std::string& model_path, const std::string& type,
                         const std::string& output) {
  if (type.empty())
    fail("option --type is required with --format gguf (", gguf_recipe_names(), ")");
  const auto recipe = parse_gguf_recipe(type);
  if (!recipe) fail("option --type: '", type, "' is not a GGUF type (", gguf_recipe_names(), ")");
  const auto start = std::chrono::steady_clock::now();
  const auto model = load_model(model_path);
  const auto report = export_gguf(*model, output, *recipe, [](const std::string& line) {
    std::fprintf(stderr, "%s\n", line.c_str());
  });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::map<std::string, int> counts;
  for (const auto& tensor : report.tensors) ++counts[std::string(ggml_type_name(tensor.type))];
  std::string summary;
  for (const auto& [name, count] : counts) {
    summary += (summary.empty() ? "" : ", ") + std::to_string(count) + " " + name;
  }
  std::printf("exported %zu tensors (%s) as GGUF %s: %.2f MiB in %.2f s\n", report.tensors.size(),
              summary.c_str(), recipe->name.c_str(),
              static_cast<double>(report.file_bytes) / (1024.0 * 1024.0), seconds);
  std::printf("saved to %s\n", output.c_str());
}

}  // namespace uq::cli
