#include "check_tensors_option.hpp"

#include <cstdio>

#include "io/tensor_check.hpp"

namespace uq::cli {

void add_check_tensors_option(CLI::App& command, bool& check) {
  command.add_flag("--check-tensors", check,
                   "Scan every stored value for NaN and infinity before running");
}

void check_tensors_if_asked(bool check, const std::string& model, const std::string& adapter) {
  if (!check) return;
  for (const std::string& path : {model, adapter}) {
    if (path.empty()) continue;
    const TensorCheckSummary summary = check_tensors_finite(path);
    std::fprintf(stderr, "check-tensors: %s: %lld values in %lld tensors, all finite\n",
                 path.c_str(), static_cast<long long>(summary.values),
                 static_cast<long long>(summary.tensors));
  }
}

}  // namespace uq::cli
