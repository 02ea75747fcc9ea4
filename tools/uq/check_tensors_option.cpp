#include "check_tensors_option.hpp"

#include <cstdio>

#include "io/tensor_check.hpp"
#include "train/adapter_io.hpp"

namespace uq::cli {

void add_check_tensors_option(CLI::App& command, bool& check) {
  command.add_flag("--check-tensors", check,
                   "Scan every stored value for NaN and infinity before running");
}

void check_tensors_if_asked(bool check, const std::string& model, const std::string& adapter) {
  if (!check) return;
  const auto scan = [](const std::filesystem::path& path) {
    const TensorCheckSummary summary = check_tensors_finite(path);
    std::fprintf(stderr, "check-tensors: %s: %lld values in %lld tensors, all finite\n",
                 path.string().c_str(), static_cast<long long>(summary.values),
                 static_cast<long long>(summary.tensors));
  };
  scan(model);
  // Only the file --adapter reads: mlx-lm keeps numbered checkpoints with the same tensor names
  // beside it.
  if (!adapter.empty()) scan(adapter_weights_file(adapter));
}

}  // namespace uq::cli
