#pragma once
// Each `uq` subcommand lives in its own cmd_<name>.cpp and registers itself
// here: it adds a CLI11 subcommand whose callback does the work. Callbacks
// throw uq::Error for bad input; main() prints it as one "error:" line.
#include <CLI/CLI.hpp>

namespace uq::cli {

void register_info(CLI::App& app);
void register_logits(CLI::App& app);
void register_eval(CLI::App& app);
void register_generate(CLI::App& app);
void register_quantize(CLI::App& app);
void register_bench(CLI::App& app);
void register_finetune(CLI::App& app);
void register_export(CLI::App& app);
void register_synth(CLI::App& app);

}  // namespace uq::cli
