// `uq export MODEL ... -o OUTPUT`: writes a model in another form. Each form
// lives in its own file; this only parses the options and dispatches.
//   --format gguf --type T              a GGUF file for llama.cpp (export_gguf.cpp)
//   --format mlx|quanto|bnb|custom      another backend's directory layout (export_layout.cpp)
//   --adapter DIR --fuse [--bits N]     LoRA merged into the weights (export_fused.cpp)
#include <string>

#include "commands.hpp"
#include "core/error.hpp"
#include "export_fused.hpp"
#include "export_gguf.hpp"
#include "export_layout.hpp"
#include "run_options.hpp"

namespace uq::cli {

void register_export(CLI::App& app) {
  struct Options {
    FusedExportOptions fused;  // model, output and the fused-export settings
    bool fuse = false;
    std::string format;
    std::string type;
    RunOptions run;
  };
  static Options options;
  auto* command = app.add_subcommand("export", "Write a model in another form or format");
  command->add_option("MODEL", options.fused.model, "Model directory or .gguf file")->required();
  command->add_option("-o,--output", options.fused.output, "Output file or directory")->required();
  command->add_option("--format", options.format,
                      "gguf: a GGUF file for llama.cpp; mlx, quanto, bnb or custom: the model's "
                      "weights as they are, in that backend's directory layout");
  command->add_option("--type", options.type,
                      "gguf: ggml type recipe (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q6_K, "
                      "Q4_K, Q4_K_M)");
  command->add_option("--adapter", options.fused.adapter,
                      "LoRA adapter directory (PEFT or mlx-lm)");
  command->add_flag("--fuse", options.fuse, "Merge --adapter into the weights");
  command
      ->add_option("--dtype", options.fused.dtype,
                   "Float dtype of a fused export without --bits: float32, bfloat16, float16")
      ->capture_default_str();
  command->add_option("--bits", options.fused.bits, "Re-quantize the fused weights to N bits");
  command->add_option("--backend", options.fused.backend, "Backend that re-quantizes")
      ->capture_default_str();
  command->add_option("--group-size", options.fused.group_size, "Group size when re-quantizing")
      ->capture_default_str();
  command->add_flag("--json", options.fused.json, "Print one JSON object on stdout");
  add_run_options(*command, options.run);
  command->callback([command] {
    apply_run_options(options.run);
    if (!options.format.empty()) {
      // The fused export's re-quantizing options do nothing here: say so rather than ignore them.
      for (const char* name : {"--bits", "--group-size", "--backend", "--dtype"}) {
        if (command->count(name) > 0) {
          fail("option ", name,
               " is for --adapter DIR --fuse, not --format (which keeps the "
               "weights as they are; re-quantize with uq quantize)");
        }
      }
      if (options.format != "gguf" && !is_layout_export_format(options.format)) {
        fail("option --format: '", options.format, "' is not supported (gguf, ",
             layout_export_formats(), ")");
      }
      if (options.fuse || !options.fused.adapter.empty()) {
        fail("option --format ", options.format,
             " takes no --adapter: fuse first (uq export MODEL --adapter DIR --fuse -o FUSED), "
             "then export FUSED");
      }
      if (options.format == "gguf") {
        export_gguf_command(options.fused.model, options.type, options.fused.output);
      } else {
        if (!options.type.empty()) fail("option --type is for --format gguf only");
        export_layout(options.fused.model, options.format, options.fused.output,
                      options.fused.json);
      }
      return;
    }
    if (options.fuse) {
      export_fused(options.fused);
      return;
    }
    if (!options.fused.adapter.empty()) fail("option --adapter needs --fuse");
    fail(
        "uq export: nothing to do (use --format gguf --type T, --format mlx|quanto|bnb|custom, "
        "or --adapter DIR --fuse)");
  });
}

}  // namespace uq::cli
