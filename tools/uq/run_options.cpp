#include "run_options.hpp"

#include "core/error.hpp"
#include "core/progress.hpp"
#include "core/thread_pool.hpp"
#include "model/device_placement.hpp"

namespace uq::cli {

void add_run_options(CLI::App& command, RunOptions& options) {
  command.add_option("--device", options.device, "cpu, cuda or auto")->capture_default_str();
  command.add_option("--threads", options.threads, "CPU threads (default: all)");
  command.add_flag("--quiet", options.quiet, "No progress bars on stderr");
}

void apply_run_options(const RunOptions& options) {
  check_device_option(options.device);
  if (options.threads < 0) fail("option --threads must be >= 1");
  if (options.threads > 0) set_num_threads(options.threads);
  set_progress_quiet(options.quiet);
}

}  // namespace uq::cli
