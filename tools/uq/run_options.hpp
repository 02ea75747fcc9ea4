#pragma once
// Options every command that runs a model shares: --device and --threads.
#include <CLI/CLI.hpp>
#include <string>

namespace uq::cli {

struct RunOptions {
  std::string device = "auto";
  int threads = 0;  // 0: keep the default (hardware threads or UQ_NUM_THREADS)
};

void add_run_options(CLI::App& command, RunOptions& options);
// Validates the device and sets the thread count.
// Throws uq::Error naming the option at fault.
void apply_run_options(const RunOptions& options);

}  // namespace uq::cli
