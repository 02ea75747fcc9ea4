// QLoRA training on the GPU (CudaTrainableDecoder, Trainer with device "cuda", `uq finetune
// --device cuda`) against the CPU TrainableDecoder<float> on the bundled model: adapter
// gradients of one batch within 1e-3 relative L2 (4-bit g64 affine and bf16 bases, and a
// variant with tied embeddings, biases and sliding windows), the first steps of the issue's
// recipe with the CPU's losses, 30 steps lowering the loss, resume, and the command.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <random>

#include <nlohmann/json.hpp>
#include "io/hf_config.hpp"
#include "io/safetensors.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "kernels/cpu/affine_gemv_int8.hpp"
#include "kernels/cuda/cuda_trainable_decoder.hpp"
#include "kernels/cuda/device.hpp"
#include "model/decoder.hpp"
#include "support/test_support.hpp"
#include "train/trainable_decoder.hpp"
#include "train/trainer.hpp"

namespace {

using uq::LoraAdapter;

// The bundled model with every matrix quantized to MLX affine `bits` g64 (16: the bf16 model).
std::shared_ptr<uq::Model> bundled_model(int bits) {
  return bits == 16 ? uq::load_model(uq::test::bundled_model()) : uq::test::bundled_affine(bits);
}

// The bundled bf16 weights under a config with tied embeddings, random biases on every
// projection (test::bundled_with_random_biases) and a sliding window of 40 on every layer.
std::shared_ptr<uq::Model> variant_model() {
  uq::ModelConfig config = uq::load_model_config(uq::test::bundled_model() / "config.json");
  config.tie_word_embeddings = true;
  config.attention_bias = true;
  config.o_proj_bias = true;
  config.mlp_bias = true;
  config.sliding_window = 40;
  config.layer_uses_sliding_window.assign(static_cast<std::size_t>(config.num_hidden_layers), true);
  return uq::test::bundled_with_random_biases(config);
}

// Rank-8 adapters on all seven projections of every layer, A and B both random (B = 0 would
// leave ∂A zero).
std::map<std::string, std::shared_ptr<LoraAdapter>> random_adapters(const uq::Model& model) {
  std::map<std::string, std::shared_ptr<LoraAdapter>> adapters;
  std::mt19937 random(11);
  for (const auto& [path, weight] : model.named_weights()) {
    if (path.find("_proj") == std::string::npos) continue;
    auto adapter =
        std::make_shared<LoraAdapter>(8, weight->in_features(), weight->out_features(), 2.0f);
    const float bound = 1.0f / std::sqrt(static_cast<float>(weight->in_features()));
    std::uniform_real_distribution<float> a(-bound, bound);
    std::normal_distribution<float> b(0.0f, 0.05f);
    for (float& value : adapter->a) value = a(random);
    for (float& value : adapter->b) value = b(random);
    adapters[path] = adapter;
  }
  return adapters;
}

class GpuTraining : public ::testing::Test {
 protected:
  void SetUp() override {
    if (uq::cuda::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU";
    uq::cpu::set_exact_gemv(true);  // the CPU reference on its exact affine path
  }
  void TearDown() override { uq::cpu::set_exact_gemv(false); }

  // One batch of `windows` windows of `tokens` val ids through both decoders; every
  // adapter's ∂A and ∂B and the summed NLL compared.
  static void expect_gradients_match(const uq::Model& model, int windows, int tokens,
                                     const uq::cuda::CudaTrainingOptions& options = {},
                                     double bound = 1e-3) {
    const auto adapters = random_adapters(model);
    uq::TrainableDecoder<float> cpu(model, adapters);
    std::vector<uq::cuda::NamedDeviceAdapter> named;
    for (const std::string& path : cpu.paths()) named.push_back({path, adapters.at(path).get()});
    uq::cuda::CudaTrainableDecoder gpu(model, named, options);
    const auto& ids = uq::test::bundled().val_ids;
    const std::vector<std::int32_t> batch(ids.begin(), ids.begin() + windows * tokens);
    const double weight = 1.0 / (windows * (tokens - 1));
    double cpu_nll = 0.0;
    for (int w = 0; w < windows; ++w) {
      cpu_nll += cpu.accumulate(std::span(batch).subspan(static_cast<std::size_t>(w * tokens),
                                                         static_cast<std::size_t>(tokens)),
                                weight);
    }
    const double gpu_nll = gpu.accumulate(batch, windows, weight);
    EXPECT_NEAR(gpu_nll, cpu_nll, bound * 1e-2 * cpu_nll);
    ASSERT_EQ(gpu.adapter_count(), cpu.paths().size());
    std::vector<float> all_gpu, all_cpu;
    for (std::size_t i = 0; i < gpu.adapter_count(); ++i) {
      std::vector<float> a, b;
      gpu.download_gradient(i, a, b);
      const uq::LoraGradient<float>& want = cpu.gradient(i);
      EXPECT_LT(uq::test::relative_l2(a, want.a), bound) << cpu.paths()[i] << " lora_A";
      EXPECT_LT(uq::test::relative_l2(b, want.b), bound) << cpu.paths()[i] << " lora_B";
      all_gpu.insert(all_gpu.end(), a.begin(), a.end());
      all_gpu.insert(all_gpu.end(), b.begin(), b.end());
      all_cpu.insert(all_cpu.end(), want.a.begin(), want.a.end());
      all_cpu.insert(all_cpu.end(), want.b.begin(), want.b.end());
    }
    const double error = uq::test::relative_l2(all_gpu, all_cpu);
    EXPECT_LT(error, bound);
    std::printf("gradients: relative L2 %.3g over %zu values, NLL %.6f vs %.6f\n", error,
                all_gpu.size(), gpu_nll, cpu_nll);
  }

  static std::vector<std::int32_t> finetune_train_ids() {
    const auto& tokenizer = *uq::test::bundled().model->tokenizer();
    return tokenizer.encode(uq::test::read_text(uq::test::source_path("data/finetune_train.txt")));
  }
};

TEST_F(GpuTraining, Affine4BitGradientsMatchCpu) {
  expect_gradients_match(*bundled_model(4), 3, 96);
}

TEST_F(GpuTraining, Bf16GradientsMatchCpu) {
  expect_gradients_match(*bundled_model(16), 3, 96);
}

// TF32 products keep ~10 mantissa bits: gradients within 2e-2 of the fp32 CPU's.
TEST_F(GpuTraining, Tf32GradientsStayCloseToCpu) {
  expect_gradients_match(*bundled_model(4), 3, 96, {0.0, true}, 2e-2);
}

TEST_F(GpuTraining, TiedBiasedSlidingWindowGradientsMatchCpu) {
  expect_gradients_match(*variant_model(), 2, 80);
}

TEST_F(GpuTraining, DropoutMasksAreRedrawnFromTheSeed) {
  const auto model = bundled_model(4);
  const auto adapters = random_adapters(*model);
  std::vector<uq::cuda::NamedDeviceAdapter> named;
  for (const auto& [path, adapter] : adapters) named.push_back({path, adapter.get()});
  uq::cuda::CudaTrainableDecoder plain(*model, named);
  uq::cuda::CudaTrainableDecoder dropped(*model, named, {0.25});
  const auto& ids = uq::test::bundled().val_ids;
  const std::vector<std::int32_t> batch(ids.begin(), ids.begin() + 128);
  const auto gradients = [&](uq::cuda::CudaTrainableDecoder& decoder, std::uint64_t seed) {
    decoder.zero_gradients();
    decoder.accumulate(batch, 2, 1.0 / 126, seed);
    std::vector<float> a, b;
    decoder.download_gradient(0, a, b);
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  const auto first = gradients(dropped, 5);
  EXPECT_EQ(gradients(dropped, 5), first);  // the backward redraws the forward's masks
  EXPECT_GT(uq::test::relative_l2(gradients(dropped, 6), first), 1e-2);
  EXPECT_GT(uq::test::relative_l2(gradients(plain, 5), first), 1e-2);
}

// The recipe (4-bit g64, rank 16, alpha 32, lr 1e-3, batch 16, ctx 256): the GPU's
// first steps have the CPU's losses and gradient norms, and 30 steps lower the loss.
TEST_F(GpuTraining, RecipeStepsFollowTheCpu) {
  const std::vector<std::int32_t> train_ids = finetune_train_ids();
  uq::FinetuneOptions options;
  options.steps = 30;
  options.device = "cuda";
  uq::Trainer gpu(bundled_model(4), train_ids, options);
  ASSERT_EQ(gpu.device(), "cuda");
  options.device = "cpu";
  uq::Trainer cpu(bundled_model(4), train_ids, options);
  std::vector<double> losses;
  for (int step = 0; step < 30; ++step) {
    const uq::StepReport report = gpu.step();
    losses.push_back(report.loss);
    if (step < 3) {
      const uq::StepReport want = cpu.step();
      EXPECT_NEAR(report.loss, want.loss, 1e-4 * want.loss) << "step " << step + 1;
      EXPECT_NEAR(report.grad_norm, want.grad_norm, 1e-3 * want.grad_norm) << "step " << step + 1;
    }
  }
  std::printf("GPU recipe losses: step 1 %.4f, step 10 %.4f, step 30 %.4f\n", losses[0], losses[9],
              losses[29]);
  EXPECT_TRUE(gpu.finished());
  EXPECT_LT(losses[29], losses[0] - 0.5);
  EXPECT_LT(losses[29], losses[9]);
}

TEST_F(GpuTraining, ResumedRunContinuesBitwise) {
  const std::vector<std::int32_t> train_ids = finetune_train_ids();
  uq::FinetuneOptions options;
  options.steps = 6;
  options.batch = 4;
  options.ctx = 64;
  options.gradient_accumulation = 2;
  options.device = "cuda";
  const uq::test::TempDir dir;
  uq::Trainer whole(bundled_model(4), train_ids, options);
  for (int step = 0; step < 3; ++step) whole.step();
  whole.save_checkpoint(dir.path() / "checkpoint");
  uq::Trainer resumed(bundled_model(4), train_ids, options);
  resumed.resume(dir.path() / "checkpoint");
  EXPECT_EQ(resumed.steps_done(), 3);
  while (!whole.finished()) {
    const uq::StepReport want = whole.step();
    const uq::StepReport got = resumed.step();
    EXPECT_EQ(got.loss, want.loss);
    EXPECT_EQ(got.grad_norm, want.grad_norm);
  }
  const uq::AdapterSet a = whole.adapters(uq::AdapterFormat::Peft);
  const uq::AdapterSet b = resumed.adapters(uq::AdapterFormat::Peft);
  for (const auto& [path, adapter] : a.adapters) {
    EXPECT_EQ(b.adapters.at(path).a, adapter.a) << path;
    EXPECT_EQ(b.adapters.at(path).b, adapter.b) << path;
  }
}

TEST_F(GpuTraining, FinetuneCommandTrainsOnTheGpu) {
  const uq::test::TempDir dir;
  const auto q4 = (dir.path() / "q4").string();
  // The first ~12 KB of the validation text (whole lines): the validations run on the CPU.
  std::string text = uq::test::read_text(uq::test::source_path("data/finetune_val.txt"));
  text.resize(text.rfind('\n', 12000) + 1);
  const auto val = (dir.path() / "val.txt").string();
  std::ofstream(val, std::ios::binary) << text;
  ASSERT_EQ(uq::test::run_uq({"quantize", uq::test::bundled_model().string(), "-o", q4, "--bits",
                              "4", "--group-size", "64", "--backend", "mlx", "--quiet"})
                .exit_code,
            0);
  const auto result = uq::test::run_uq(
      {"finetune", q4,     "--data",  uq::test::source_path("data/finetune_train.txt").string(),
       "--val",    val,    "-o",      (dir.path() / "adapter").string(),
       "--steps",  "12",   "--batch", "8",
       "--ctx",    "128",  "--lr",    "3e-3",
       "--device", "cuda", "--quiet", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("training on cuda"), std::string::npos) << result.err;
  const auto report = nlohmann::json::parse(result.out);
  EXPECT_EQ(report["device"], "cuda");
  // The CPU, same settings: 170.9 -> 69.0.
  EXPECT_LT(report["val_ppl"].get<double>(), 0.6 * report["val_ppl_before"].get<double>());
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "adapter" / "adapter_model.safetensors"));
}

}  // namespace
