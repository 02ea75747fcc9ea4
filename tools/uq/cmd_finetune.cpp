// `uq finetune MODEL --data FILE -o ADAPTER_DIR ...`: trains LoRA adapters on
// the frozen (quantized or float) weights of MODEL, prints a progress line,
// validates, checkpoints into ADAPTER_DIR/checkpoint, resumes with --resume.
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "check_tensors_option.hpp"
#include "commands.hpp"
#include "core/error.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "io/tokenizer/utf8.hpp"
#include "model/decoder.hpp"
#include "run_options.hpp"
#include "train/adapter_io.hpp"
#include "train/trainer.hpp"

namespace uq::cli {
namespace {

std::vector<std::int32_t> tokenize_file(const Model& model, const std::string& option,
                                        const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("option ", option, ": cannot open '", path, "'");
  std::ostringstream text;
  text << in.rdbuf();
  const std::string contents = text.str();
  if (contents.empty()) fail("option ", option, ": '", path, "' is empty");
  if (const auto bad = utf8::find_invalid(contents)) {
    fail("option ", option, ": '", path, "' is not valid UTF-8 (byte ", *bad, ")");
  }
  return model.tokenizer()->encode(contents);
}

std::string duration_text(double seconds) {
  const auto total = static_cast<long long>(std::llround(seconds));
  char text[32];
  if (total >= 3600) {
    std::snprintf(text, sizeof text, "%lldh%02lldm", total / 3600, total / 60 % 60);
  } else {
    std::snprintf(text, sizeof text, "%lldm%02llds", total / 60, total % 60);
  }
  return text;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

}  // namespace

void register_finetune(CLI::App& app) {
  struct Options {
    std::string model;
    std::string data;
    std::string output;
    std::string val;
    std::string adapter_format = "peft";
    std::vector<std::string> targets;
    FinetuneOptions train;
    std::int64_t val_every = 0;
    std::int64_t checkpoint_every = 50;
    std::int64_t log_every = 10;
    std::int64_t stop_after = 0;
    bool resume = false;
    bool json = false;
    bool check_tensors = false;
    RunOptions run;
  };
  static Options options;
  auto* command = app.add_subcommand("finetune", "Train LoRA adapters on the frozen model (QLoRA)");
  command->add_option("MODEL", options.model, "Model directory (float or quantized)")->required();
  command->add_option("--data", options.data, "Training text file")->required();
  command->add_option("-o,--output", options.output, "Adapter directory to write")->required();
  command->add_option("--val", options.val, "Validation text file (perplexity)");
  command->add_option("--lora-rank", options.train.lora.rank, "Adapter rank r")
      ->capture_default_str();
  command->add_option("--lora-alpha", options.train.lora.alpha, "Adapter alpha (scale alpha/r)")
      ->capture_default_str();
  command->add_option("--lora-dropout", options.train.lora.dropout, "Dropout on adapter inputs")
      ->capture_default_str();
  command->add_option("--target", options.targets,
                      "Module pattern to adapt (repeatable; default: all seven projections)");
  command->add_option("--steps", options.train.steps, "Optimizer steps")->capture_default_str();
  command->add_option("--batch", options.train.batch, "Windows per batch")->capture_default_str();
  command->add_option("--ctx", options.train.ctx, "Tokens per window")->capture_default_str();
  command->add_option("--lr", options.train.lr, "Peak learning rate")->capture_default_str();
  command->add_option_function<std::string>(
      "--lr-schedule",
      [](const std::string& name) { options.train.lr_schedule = parse_lr_decay(name); },
      "constant (default), linear or cosine decay after the warm-up");
  command->add_option("--warmup", options.train.warmup_steps,
                      "Warm-up steps (default: none for constant, else 5% of --steps)");
  command
      ->add_option("--grad-accum", options.train.gradient_accumulation,
                   "Batches accumulated per optimizer step")
      ->capture_default_str();
  command
      ->add_option("--max-grad-norm", options.train.max_grad_norm,
                   "Clip the gradients' global norm (0: off)")
      ->capture_default_str();
  command->add_option("--weight-decay", options.train.adamw.weight_decay, "AdamW weight decay")
      ->capture_default_str();
  command->add_option("--seed", options.train.seed, "Seed of init, data order and dropout")
      ->capture_default_str();
  command
      ->add_option("--val-every", options.val_every,
                   "Validate every N steps (0: before and after training only)")
      ->capture_default_str();
  command
      ->add_option("--checkpoint-every", options.checkpoint_every,
                   "Write ADAPTER_DIR/checkpoint every N steps (0: only at the end)")
      ->capture_default_str();
  command->add_option("--log-every", options.log_every, "Progress line every N steps")
      ->capture_default_str();
  command->add_option("--stop-after", options.stop_after,
                      "Stop (checkpointed) after N steps of this run; --resume continues");
  command->add_flag("--resume", options.resume, "Continue from ADAPTER_DIR/checkpoint");
  command->add_option("--adapter-format", options.adapter_format, "peft or mlx")
      ->capture_default_str();
  command->add_flag("--json", options.json, "Print one JSON object on stdout at the end");
  command->add_flag("--tf32", options.train.tf32,
                    "CUDA: TF32 tensor cores for the frozen-weight products (faster, ~1e-3)");
  add_check_tensors_option(*command, options.check_tensors);
  add_run_options(*command, options.run);
  command->callback([] {
    apply_run_options(options.run);
    const AdapterFormat format = parse_adapter_format(options.adapter_format);
    if (!options.targets.empty()) options.train.lora.target_modules = options.targets;
    if (options.log_every < 1) fail("option --log-every must be at least 1");
    if (options.val_every < 0) fail("option --val-every must be >= 0");
    if (options.checkpoint_every < 0) fail("option --checkpoint-every must be >= 0");
    if (options.stop_after < 0) fail("option --stop-after must be >= 0");
    const auto start = std::chrono::steady_clock::now();
    check_tensors_if_asked(options.check_tensors, options.model, "");
    auto model = load_model(options.model);
    std::vector<std::int32_t> train_ids = tokenize_file(*model, "--data", options.data);
    std::vector<std::int32_t> val_ids;
    if (!options.val.empty()) {
      val_ids = tokenize_file(*model, "--val", options.val);
      if (static_cast<std::int64_t>(val_ids.size()) < options.train.ctx) {
        fail("option --val: '", options.val, "' has ", val_ids.size(),
             " tokens, fewer than one window of --ctx ", options.train.ctx);
      }
    }
    options.train.device = options.run.device;
    Trainer trainer(model, std::move(train_ids), options.train);
    std::fprintf(stderr, "training on %s (--device %s)\n", trainer.device().c_str(),
                 options.run.device.c_str());
    const std::filesystem::path output = options.output;
    const std::filesystem::path checkpoint = output / "checkpoint";
    if (options.resume) {
      trainer.resume(checkpoint);
      std::fprintf(stderr, "resumed from %s at step %lld\n", checkpoint.string().c_str(),
                   static_cast<long long>(trainer.steps_done()));
    }
    const auto validate = [&](const char* when) -> std::optional<double> {
      if (val_ids.empty()) return std::nullopt;
      const double ppl = trainer.perplexity(val_ids);
      if (!options.run.quiet) {
        std::fprintf(stderr, "validation %s step %lld: perplexity %.4f\n", when,
                     static_cast<long long>(trainer.steps_done()), ppl);
      }
      return ppl;
    };
    const std::optional<double> ppl_before = validate("at");
    const std::int64_t total = trainer.options().steps;
    const std::int64_t first_step = trainer.steps_done();
    double train_seconds = 0.0;
    std::int64_t train_tokens = 0;
    double last_loss = std::nan("");
    std::int64_t run_steps = 0;
    while (!trainer.finished() && (options.stop_after == 0 || run_steps < options.stop_after)) {
      const StepReport report = trainer.step();
      ++run_steps;
      train_seconds += report.seconds;
      train_tokens += report.tokens;
      last_loss = report.loss;
      if (!std::isfinite(report.loss)) fail("training diverged: loss is ", report.loss);
      const bool last = trainer.finished();
      if (!options.run.quiet && (report.step % options.log_every == 0 || last)) {
        const double rate = static_cast<double>(train_tokens) / train_seconds;
        const double eta = train_seconds / static_cast<double>(report.step - first_step) *
                           static_cast<double>(total - report.step);
        std::fprintf(stderr,
                     "step %lld/%lld loss %.4f lr %.2e grad-norm %.3f %.0f tokens/s ETA %s\n",
                     static_cast<long long>(report.step), static_cast<long long>(total),
                     report.loss, report.lr, report.grad_norm, rate, duration_text(eta).c_str());
      }
      if (options.val_every > 0 && report.step % options.val_every == 0 && !last) {
        validate("after");
      }
      if (options.checkpoint_every > 0 && report.step % options.checkpoint_every == 0) {
        trainer.save_checkpoint(checkpoint);
      }
    }
    trainer.save_checkpoint(checkpoint);
    if (!trainer.finished()) {
      std::fprintf(stderr, "stopped at step %lld of %lld; continue with --resume\n",
                   static_cast<long long>(trainer.steps_done()), static_cast<long long>(total));
    } else {
      save_adapters(output, trainer.adapters(format), model->config().num_hidden_layers);
    }
    const std::optional<double> ppl_after =
        trainer.finished() ? validate("after") : std::optional<double>();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double tokens_per_second =
        train_seconds > 0.0 ? static_cast<double>(train_tokens) / train_seconds : 0.0;
    if (options.json) {
      nlohmann::json report = {{"steps", trainer.steps_done()},
                               {"finished", trainer.finished()},
                               {"loss", last_loss},
                               {"tokens_per_second", tokens_per_second},
                               {"train_seconds", train_seconds},
                               {"seconds", seconds},
                               {"peak_rss_mib", peak_rss_mib()},
                               {"device", trainer.device()},
                               {"adapter", output.string()}};
      if (ppl_before) report["val_ppl_before"] = *ppl_before;
      if (ppl_after) report["val_ppl"] = *ppl_after;
      if (std::isnan(last_loss)) report["loss"] = nullptr;
      std::printf("%s\n", report.dump().c_str());
    } else if (trainer.finished()) {
      std::printf("adapter written to %s (%lld steps, %.0f tokens/s, peak RSS %.0f MiB)\n",
                  output.string().c_str(), static_cast<long long>(trainer.steps_done()),
                  tokens_per_second, peak_rss_mib());
    }
  });
}

}  // namespace uq::cli
