// The `uq` command: quantize, evaluate, run and compare models.
#include <cstdio>
#include <exception>

#include "commands.hpp"
#include "core/error.hpp"
#include "core/interrupt.hpp"

int main(int argc, char** argv) {
  uq::install_interrupt_handlers();
  CLI::App app{"uq: quantize Hugging Face language models, run and compare them"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  uq::cli::register_info(app);
  uq::cli::register_logits(app);
  uq::cli::register_eval(app);
  uq::cli::register_generate(app);
  uq::cli::register_quantize(app);
  uq::cli::register_bench(app);
  uq::cli::register_finetune(app);
  uq::cli::register_export(app);
  uq::cli::register_synth(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& parse_error) {
    if (parse_error.get_exit_code() == 0) return app.exit(parse_error);
    std::fprintf(stderr, "error: %s\n", parse_error.what());
    return 2;
  } catch (const uq::Error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
  return 0;
}
