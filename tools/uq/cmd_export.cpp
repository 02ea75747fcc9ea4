// `uq export MODEL --format FORMAT ... -o OUTPUT`: writes a model in another
// ecosystem's file format. Each format's work lives in its own file; this
// only parses options and dispatches.
#include <string>

#include "commands.hpp"
#include "core/error.hpp"
#include "export_gguf.hpp"
#include "run_options.hpp"

namespace uq::cli {

void register_export(CLI::App& app) {
  struct Options {
    std::string model;
    std::string format;
    std::string type;
    std::string output;
    RunOptions run;
  };
  static Options options;
  auto* command = app.add_subcommand("export", "Write a model in another ecosystem's format");
  command->add_option("MODEL", options.model, "Model directory or file")->required();
  command->add_option("--format", options.format, "Output format: gguf")->required();
  command->add_option("--type", options.type,
                      "gguf: ggml type recipe (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q6_K, "
                      "Q4_K, Q4_K_M)");
  command->add_option("-o,--output", options.output, "Output file")->required();
  add_run_options(*command, options.run);
  command->callback([] {
    apply_run_options(options.run);
    if (options.format == "gguf") {
      export_gguf_command(options.model, options.type, options.output);
    } else {
      fail("option --format: '", options.format, "' is not supported (gguf)");
    }
  });
}

}  // namespace uq::cli
