// `uq export MODEL ... -o OUT`: writes MODEL in another form. Each form lives
// in its own file; this only parses the options and dispatches.
//   --adapter DIR --fuse [--bits N]   LoRA merged into the weights (export_fused.cpp)
#include "commands.hpp"
#include "core/error.hpp"
#include "export_fused.hpp"
#include "run_options.hpp"

namespace uq::cli {

void register_export(CLI::App& app) {
  struct Options {
    FusedExportOptions fused;
    bool fuse = false;
    RunOptions run;
  };
  static Options options;
  auto* command = app.add_subcommand("export", "Write a model in another form");
  command->add_option("MODEL", options.fused.model, "Model directory")->required();
  command->add_option("-o,--output", options.fused.output, "Output directory")->required();
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
  command->callback([] {
    apply_run_options(options.run);
    if (options.fuse) {
      export_fused(options.fused);
      return;
    }
    if (!options.fused.adapter.empty()) fail("option --adapter needs --fuse");
    fail("uq export: nothing to do (use --adapter DIR --fuse)");
  });
}

}  // namespace uq::cli
