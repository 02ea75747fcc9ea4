// `uq info`: what this build can do on this machine.
#include <nlohmann/json.hpp>
#include <thread>

#include "commands.hpp"
#include "core/thread_pool.hpp"

namespace uq::cli {

void register_info(CLI::App& app) {
  auto* command = app.add_subcommand("info", "Show devices, backends and memory");
  static bool as_json = false;
  command->add_flag("--json", as_json, "Print one JSON object on stdout");
  command->callback([] {
    nlohmann::json info;
    info["version"] = "0.1.0";
    info["cpu"] = {{"threads", num_threads()},
                   {"hardware_threads", std::thread::hardware_concurrency()}};
    if (as_json) {
      std::printf("%s\n", info.dump().c_str());
    } else {
      std::printf("unified_quantization 0.1.0\ncpu: %d threads\n", num_threads());
    }
  });
}

}  // namespace uq::cli
