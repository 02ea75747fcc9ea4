#include "train/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"
#include "io/staged_directory.hpp"
#include "model/decoder.hpp"
#include "model/device_placement.hpp"
#include "model/perplexity.hpp"
#include "train/gradient_clipping.hpp"
#include "train/lora_attach.hpp"
#include "train/trainable_decoder.hpp"

#if defined(UQ_HAVE_CUDA)
#include "kernels/cuda/cuda_model.hpp"
#include "kernels/cuda/cuda_trainable_decoder.hpp"
#endif

namespace uq {
namespace {

using nlohmann::json;

constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFile = "trainer_state.json";

void check_options(const FinetuneOptions& options, const ModelConfig& config) {
  validate(options.lora);
  if (options.steps < 1) fail("option --steps must be at least 1, got ", options.steps);
  if (options.batch < 1) fail("option --batch must be at least 1, got ", options.batch);
  if (options.gradient_accumulation < 1) {
    fail("option --grad-accum must be at least 1, got ", options.gradient_accumulation);
  }
  check_perplexity_ctx(config, options.ctx);
  if (!(options.lr > 0.0)) fail("option --lr must be positive, got ", options.lr);
  if (options.warmup_steps > options.steps) {
    fail("option --warmup (", options.warmup_steps, ") exceeds --steps (", options.steps, ")");
  }
  if (!(options.max_grad_norm >= 0.0)) fail("option --max-grad-norm must be >= 0");
}

// Everything a resumed run must share with the interrupted one.
json run_identity(const FinetuneOptions& options, std::size_t train_tokens) {
  return {{"rank", options.lora.rank},
          {"alpha", options.lora.alpha},
          {"dropout", options.lora.dropout},
          {"target_modules", options.lora.target_modules},
          {"steps", options.steps},
          {"batch", options.batch},
          {"ctx", options.ctx},
          {"gradient_accumulation", options.gradient_accumulation},
          {"lr", options.lr},
          {"lr_schedule", lr_decay_name(options.lr_schedule)},
          {"warmup_steps", options.warmup_steps},
          {"max_grad_norm", options.max_grad_norm},
          {"weight_decay", options.adamw.weight_decay},
          {"seed", options.seed},
          {"train_tokens", train_tokens}};
}

// "cpu" or "cuda" for options.device; asked before the adapters wrap the weights.
std::string training_device(const Model& model, const std::string& device) {
  check_device_option(device);
#if defined(UQ_HAVE_CUDA)
  if (device == "cpu" || !cuda_available()) return "cpu";
  if (const auto reason = cuda::cuda_unsupported_reason(model)) {
    if (device == "cuda") fail("option --device cuda: ", *reason);
    return "cpu";
  }
  return "cuda";
#else
  (void)model;
  return "cpu";
#endif
}

std::span<const std::byte> bytes_of(const std::vector<float>& values) {
  return std::as_bytes(std::span<const float>(values));
}

}  // namespace

Trainer::Trainer(std::shared_ptr<Model> model, std::vector<std::int32_t> train_ids,
                 FinetuneOptions options)
    : model_(std::move(model)),
      train_ids_(std::move(train_ids)),
      options_(std::move(options)),
      optimizer_(options_.adamw) {
  if (!model_) fail("Trainer: no model");
  check_options(options_, model_->config());
  if (options_.warmup_steps < 0) {
    options_.warmup_steps = options_.lr_schedule == LrDecay::constant ? 0 : options_.steps / 20;
  }
  if (static_cast<std::int64_t>(train_ids_.size()) < options_.ctx) {
    fail("option --data: ", train_ids_.size(), " tokens, fewer than one window of --ctx ",
         options_.ctx);
  }
  schedule_ = {options_.lr, options_.warmup_steps, options_.steps, options_.lr_schedule};
  device_ = training_device(*model_, options_.device);
  std::map<std::string, std::shared_ptr<LoraAdapter>> trained;
  for (const NamedLoraAdapter& named : attach_lora(*model_, options_.lora, options_.seed)) {
    paths_.push_back(named.path);
    adapters_.push_back(named.adapter);
    trained[named.path] = named.adapter;
  }
#if defined(UQ_HAVE_CUDA)
  if (device_ == "cuda") {
    std::vector<cuda::NamedDeviceAdapter> named;
    for (std::size_t i = 0; i < paths_.size(); ++i)
      named.push_back({paths_[i], adapters_[i].get()});
    cuda_decoder_ = std::make_shared<cuda::CudaTrainableDecoder>(
        *model_, named, cuda::CudaTrainingOptions{options_.lora.dropout, options_.tf32});
    return;
  }
#endif
  decoder_ = std::make_unique<TrainableDecoder<float>>(*model_, trained, options_.lora.dropout);
}

Trainer::~Trainer() = default;

std::int64_t Trainer::steps_done() const {
#if defined(UQ_HAVE_CUDA)
  if (cuda_decoder_) return cuda_decoder_->steps_taken();
#endif
  return optimizer_.steps_taken();
}

std::vector<std::int32_t> Trainer::window_ids(std::int64_t sequence) const {
  // Windows are visited in a fresh seeded order every epoch, so the window of
  // any sequence number is known without replaying earlier steps.
  const auto windows = static_cast<std::int64_t>(train_ids_.size()) / options_.ctx;
  const std::int64_t epoch = sequence / windows;
  std::vector<std::int64_t> order(static_cast<std::size_t>(windows));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(options_.seed * 1000003ULL + static_cast<std::uint64_t>(epoch));
  std::shuffle(order.begin(), order.end(), rng);
  const std::int64_t window = order[static_cast<std::size_t>(sequence % windows)];
  const auto begin = train_ids_.begin() + window * options_.ctx;
  return {begin, begin + options_.ctx};
}

StepReport Trainer::step() {
  if (finished()) fail("Trainer: all ", options_.steps, " steps are done");
  const auto start = std::chrono::steady_clock::now();
  const std::int64_t step_index = steps_done();
  const std::int64_t sequences = options_.batch * options_.gradient_accumulation;
  const double weight = 1.0 / static_cast<double>(sequences * (options_.ctx - 1));
  StepReport report;
#if defined(UQ_HAVE_CUDA)
  if (cuda_decoder_) {
    // A batch of windows per launch sequence; its dropout masks are keyed by its first window.
    cuda_decoder_->zero_gradients();
    double total = 0.0;
    for (std::int64_t first = 0; first < sequences; first += options_.batch) {
      std::vector<std::int32_t> ids;
      for (std::int64_t s = first; s < first + options_.batch; ++s) {
        const std::vector<std::int32_t> window = window_ids(step_index * sequences + s);
        ids.insert(ids.end(), window.begin(), window.end());
      }
      const auto sequence = static_cast<std::uint64_t>(step_index * sequences + first);
      total +=
          cuda_decoder_->accumulate(ids, options_.batch, weight, options_.seed ^ (sequence << 20));
    }
    report.lr = schedule_.at(step_index);
    report.grad_norm =
        cuda_decoder_->clip_and_step(options_.max_grad_norm, report.lr, options_.adamw);
    // The model's LoraWeights share these: validation and saving see the trained values.
    for (std::size_t i = 0; i < adapters_.size(); ++i) {
      cuda_decoder_->download_adapter(i, *adapters_[i]);
    }
    report.step = steps_done();
    report.loss = total / static_cast<double>(sequences * (options_.ctx - 1));
    report.tokens = sequences * options_.ctx;
    report.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return report;
  }
#endif
  decoder_->zero_gradients();
  double total_nll = 0.0;
  for (std::int64_t s = 0; s < sequences; ++s) {
    const std::int64_t sequence = step_index * sequences + s;
    const std::vector<std::int32_t> ids = window_ids(sequence);
    total_nll += decoder_->accumulate(ids, weight,
                                      options_.seed ^ (static_cast<std::uint64_t>(sequence) << 20));
  }
  std::vector<std::vector<float>*> gradients;
  std::vector<ParameterRef> parameters;
  for (std::size_t i = 0; i < adapters_.size(); ++i) {
    LoraGradient<float>& gradient = decoder_->gradient(i);
    gradients.push_back(&gradient.a);
    gradients.push_back(&gradient.b);
  }
  report.grad_norm = clip_gradient_norm(gradients, options_.max_grad_norm);
  for (std::size_t i = 0; i < adapters_.size(); ++i) {
    LoraGradient<float>& gradient = decoder_->gradient(i);
    parameters.push_back({adapters_[i]->a, gradient.a});
    parameters.push_back({adapters_[i]->b, gradient.b});
  }
  report.lr = schedule_.at(step_index);
  optimizer_.step(parameters, report.lr);
  report.step = steps_done();
  report.loss = total_nll / static_cast<double>(sequences * (options_.ctx - 1));
  report.tokens = sequences * options_.ctx;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

double Trainer::perplexity(std::span<const std::int32_t> ids) const {
  return uq::perplexity(*model_, ids, options_.ctx).perplexity;
}

AdapterSet Trainer::adapters(AdapterFormat format) const {
  AdapterSet set;
  set.config = options_.lora;
  set.format = format;
  for (std::size_t i = 0; i < paths_.size(); ++i) set.adapters.emplace(paths_[i], *adapters_[i]);
  return set;
}

void Trainer::save_checkpoint(const std::filesystem::path& dir) const {
  StagedDirectory staged(dir);
  save_adapters(staged.path(), adapters(AdapterFormat::Peft), model_->config().num_hidden_layers);
  SafetensorsWriter writer(staged.path() / kOptimizerFile);
  // Moments exist once a step was taken; they pair with paths_ as (A, B).
  std::vector<std::vector<float>> m = optimizer_.first_moments();
  std::vector<std::vector<float>> v = optimizer_.second_moments();
#if defined(UQ_HAVE_CUDA)
  if (cuda_decoder_) cuda_decoder_->download_moments(m, v);
#endif
  for (std::size_t index = 0; index < m.size(); ++index) {
    const std::string name = paths_[index / 2] + (index % 2 == 0 ? ".lora_A" : ".lora_B");
    const auto size = static_cast<std::int64_t>(m[index].size());
    writer.add(name + ".exp_avg", DType::F32, {size}, bytes_of(m[index]));
    writer.add(name + ".exp_avg_sq", DType::F32, {size}, bytes_of(v[index]));
  }
  writer.commit();
  const json state = {{"step", steps_done()}, {"run", run_identity(options_, train_ids_.size())}};
  write_file_atomic(staged.path() / kStateFile, state.dump(2) + "\n");
  staged.commit();
}

void Trainer::resume(const std::filesystem::path& dir) {
  const auto state_path = dir / kStateFile;
  std::ifstream in(state_path);
  if (!in) fail(state_path.string(), ": no checkpoint to resume from");
  json state;
  try {
    state = json::parse(in);
  } catch (const json::exception& error) {
    fail(state_path.string(), ": invalid JSON (", error.what(), ")");
  }
  const json expected = run_identity(options_, train_ids_.size());
  if (!state.contains("run") || !state.contains("step")) {
    fail(state_path.string(), ": missing \"run\" or \"step\"");
  }
  for (const auto& [key, value] : expected.items()) {
    if (!state["run"].contains(key) || state["run"][key] != value) {
      fail(state_path.string(), ": the checkpoint was made with ", key, " = ",
           state["run"].contains(key) ? state["run"][key].dump() : "(none)", ", this run has ",
           value.dump());
    }
  }
  const auto step = state["step"].get<std::int64_t>();
  const AdapterSet saved = load_adapters(dir);
  std::vector<std::vector<float>> m, v;
  const auto optimizer_file = step > 0 ? SafetensorsFile::open(dir / kOptimizerFile) : nullptr;
  for (std::size_t i = 0; i < paths_.size(); ++i) {
    const auto found = saved.adapters.find(paths_[i]);
    if (found == saved.adapters.end()) fail(dir.string(), ": no adapter for '", paths_[i], "'");
    if (found->second.a.size() != adapters_[i]->a.size() ||
        found->second.b.size() != adapters_[i]->b.size()) {
      fail(dir.string(), ": adapter for '", paths_[i], "' has the wrong shape");
    }
    adapters_[i]->a = found->second.a;
    adapters_[i]->b = found->second.b;
    if (!optimizer_file) continue;
    for (const char* suffix : {"lora_A", "lora_B"}) {
      const std::string name = paths_[i] + "." + suffix;
      m.push_back(optimizer_file->tensor(name + ".exp_avg").to_f32());
      v.push_back(optimizer_file->tensor(name + ".exp_avg_sq").to_f32());
      const std::size_t expected_size =
          std::string(suffix) == "lora_A" ? adapters_[i]->a.size() : adapters_[i]->b.size();
      if (m.back().size() != expected_size || v.back().size() != expected_size) {
        fail(optimizer_file->path().string(), ": moments of '", name, "' have the wrong size");
      }
    }
  }
#if defined(UQ_HAVE_CUDA)
  if (cuda_decoder_) {
    std::vector<const LoraAdapter*> restored;
    for (const auto& adapter : adapters_) restored.push_back(adapter.get());
    cuda_decoder_->upload_state(restored, step, m, v);
  }
#endif
  optimizer_.restore(step, std::move(m), std::move(v));
}

}  // namespace uq
