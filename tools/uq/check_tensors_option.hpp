#pragma once
// `--check-tensors` (llama.cpp's flag of that name) for the commands that run a model: scan
// every value MODEL (and --adapter, eval's --reference) stores for NaN and infinity first
// (io/tensor_check.hpp), so a broken file fails naming its tensor instead of giving NaN logits or
// tokens picked from them.
#include <CLI/CLI.hpp>
#include <string>

namespace uq::cli {

void add_check_tensors_option(CLI::App& command, bool& check);
// When `check`: scans `model`, then `adapter` unless empty, and says on stderr how many values
// were checked. Throws uq::Error naming the file, tensor and element of the first bad value.
void check_tensors_if_asked(bool check, const std::string& model, const std::string& adapter);

}  // namespace uq::cli
