#include "run_options.hpp"

#include "core/error.hpp"
#include "core/thread_pool.hpp"

namespace uq::cli {

void add_run_options(CLI::App& command, RunOptions& options) {
  command.add_option("--device", options.device, "cpu, cuda or auto")->capture_default_str();
  command.add_option("--threads", options.threads, "CPU threads (default: all)");
}

void apply_run_options(const RunOptions& options) {
  if (options.device == "cuda") {
    fail("option --device cuda: this build has no CUDA device yet (use cpu or auto)");
  }
  if (options.device != "cpu" && options.device != "auto") {
    fail("option --device: unknown device '", options.device, "' (expected cpu, cuda or auto)");
  }
  if (options.threads < 0) fail("option --threads must be >= 1");
  if (options.threads > 0) set_num_threads(options.threads);
}

}  // namespace uq::cli
