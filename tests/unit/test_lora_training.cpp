// The training math: float64 gradient check of the whole decoder's backward
// against central finite differences, the float path against the float64 one,
// the transposed product of every Weight type, LoraWeight, AdamW, the schedule
// and clipping.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "api/quantize.hpp"
#include "core/error.hpp"
#include "io/hf_config.hpp"
#include "model/decoder.hpp"
#include "model/device_placement.hpp"
#include "model/perplexity.hpp"
#include "support/test_support.hpp"
#include "train/adamw.hpp"
#include "train/gradient_clipping.hpp"
#include "train/lora_attach.hpp"
#include "train/lora_weight.hpp"
#include "train/lr_schedule.hpp"
#include "train/trainable_decoder.hpp"
#include "train/trainer.hpp"

namespace uq {
namespace {

// A small random Llama (with q/k/v/o biases, GQA 4 heads / 2 kv heads) in float32.
class TinyModel {
 public:
  explicit TinyModel(std::uint32_t seed) {
    const nlohmann::json raw = {{"model_type", "llama"},
                                {"hidden_size", 16},
                                {"num_hidden_layers", 2},
                                {"num_attention_heads", 4},
                                {"num_key_value_heads", 2},
                                {"intermediate_size", 24},
                                {"vocab_size", 32},
                                {"max_position_embeddings", 64},
                                {"rms_norm_eps", 1e-5},
                                {"attention_bias", true},
                                {"tie_word_embeddings", false}};
    const ModelConfig config = parse_model_config(raw, "tiny");
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 0.3f);
    const auto add = [&](const std::string& name, std::vector<std::int64_t> shape, float offset) {
      std::int64_t count = 1;
      for (auto d : shape) count *= d;
      std::vector<float> values(static_cast<std::size_t>(count));
      for (auto& value : values) value = offset + normal(rng);
      tensors_[name] = {std::move(shape), std::move(values)};
    };
    add("model.embed_tokens.weight", {32, 16}, 0.0f);
    add("lm_head.weight", {32, 16}, 0.0f);
    add("model.norm.weight", {16}, 1.0f);
    for (int l = 0; l < 2; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      add(p + "input_layernorm.weight", {16}, 1.0f);
      add(p + "post_attention_layernorm.weight", {16}, 1.0f);
      for (const auto& [name, out, in] :
           std::vector<std::tuple<std::string, std::int64_t, std::int64_t>>{
               {"self_attn.q_proj", 16, 16},
               {"self_attn.k_proj", 8, 16},
               {"self_attn.v_proj", 8, 16},
               {"self_attn.o_proj", 16, 16},
               {"mlp.gate_proj", 24, 16},
               {"mlp.up_proj", 24, 16},
               {"mlp.down_proj", 16, 24}}) {
        add(p + name + ".weight", {out, in}, 0.0f);
        if (name.find("self_attn") == 0) add(p + name + ".bias", {out}, 0.0f);
      }
    }
    TensorSource source;
    source.contains = [this](const std::string& name) { return tensors_.count(name) > 0; };
    source.tensor = [this](const std::string& name) {
      const auto& [shape, values] = tensors_.at(name);
      TensorView view;
      view.name = name;
      view.dtype = DType::F32;
      view.shape = shape;
      view.data = reinterpret_cast<const std::byte*>(values.data());
      view.nbytes = values.size() * sizeof(float);
      return view;
    };
    model = std::make_shared<Model>(config, source, float_weights(source));
  }
  std::shared_ptr<Model> model;

 private:
  std::map<std::string, std::pair<std::vector<std::int64_t>, std::vector<float>>> tensors_;
};

template <typename T>
std::map<std::string, std::shared_ptr<BasicLoraAdapter<T>>> random_adapters(const Model& model,
                                                                            std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 0.2);
  std::map<std::string, std::shared_ptr<BasicLoraAdapter<T>>> adapters;
  for (const auto& [path, weight] : model.named_weights()) {
    if (path.rfind("model.layers.", 0) != 0) continue;
    // B random too: with PEFT's B = 0 the gradient of A would be trivially 0.
    auto adapter = std::make_shared<BasicLoraAdapter<T>>(3, weight->in_features(),
                                                         weight->out_features(), T(1.5));
    for (auto& value : adapter->a) value = static_cast<T>(normal(rng));
    for (auto& value : adapter->b) value = static_cast<T>(normal(rng));
    adapters[path] = adapter;
  }
  return adapters;
}

double relative_error(double analytic, double numeric) {
  const double scale = std::max({std::fabs(analytic), std::fabs(numeric), 1e-6});
  return std::fabs(analytic - numeric) / scale;
}

const std::vector<std::int32_t> kIds = {3, 17, 5, 9, 30, 1, 12, 7};

TEST(LoraGradientCheck, AnalyticMatchesCentralDifferencesInFloat64) {
  TinyModel tiny(1);
  TrainableDecoder<double> decoder(*tiny.model, random_adapters<double>(*tiny.model, 2));
  const std::vector<double> inputs = decoder.embed(kIds);
  std::vector<double> grad_inputs(inputs.size());
  decoder.zero_gradients();
  decoder.accumulate(kIds, 1.0, 0, inputs.data(), grad_inputs.data());
  const double h = 1e-5;
  double worst = 0.0;
  std::mt19937 rng(3);
  int checked = 0;
  for (std::size_t m = 0; m < decoder.paths().size(); ++m) {
    BasicLoraAdapter<double>& adapter = decoder.adapter(m);
    const LoraGradient<double>& gradient = decoder.gradient(m);
    for (auto [values, grads] : {std::pair{&adapter.a, &gradient.a}, {&adapter.b, &gradient.b}}) {
      for (int sample = 0; sample < 3; ++sample) {
        const std::size_t i = rng() % values->size();
        const double saved = (*values)[i];
        (*values)[i] = saved + h;
        const double plus = decoder.loss(kIds, 0, inputs.data());
        (*values)[i] = saved - h;
        const double minus = decoder.loss(kIds, 0, inputs.data());
        (*values)[i] = saved;
        const double error = relative_error((*grads)[i], (plus - minus) / (2 * h));
        worst = std::max(worst, error);
        EXPECT_LE(error, 1e-4) << decoder.paths()[m] << (values == &adapter.a ? " A" : " B") << "["
                               << i << "]";
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 14 * 6);
  // The layer inputs (embedding outputs): every op's backward lies on their path.
  std::vector<double> perturbed = inputs;
  for (std::size_t i = 0; i < inputs.size(); i += 7) {
    perturbed[i] = inputs[i] + h;
    const double plus = decoder.loss(kIds, 0, perturbed.data());
    perturbed[i] = inputs[i] - h;
    const double minus = decoder.loss(kIds, 0, perturbed.data());
    perturbed[i] = inputs[i];
    const double error = relative_error(grad_inputs[i], (plus - minus) / (2 * h));
    worst = std::max(worst, error);
    EXPECT_LE(error, 1e-4) << "input " << i;
  }
  std::printf("worst relative error %.3g\n", worst);
}

TEST(LoraGradientCheck, DropoutGradientsMatchFiniteDifferences) {
  TinyModel tiny(4);
  TrainableDecoder<double> decoder(*tiny.model, random_adapters<double>(*tiny.model, 5), 0.3);
  decoder.zero_gradients();
  decoder.accumulate(kIds, 1.0, 77);
  BasicLoraAdapter<double>& adapter = decoder.adapter(5);
  const double h = 1e-5;
  for (std::size_t i = 0; i < adapter.a.size(); i += 11) {
    const double saved = adapter.a[i];
    adapter.a[i] = saved + h;
    const double plus = decoder.loss(kIds, 77);
    adapter.a[i] = saved - h;
    const double minus = decoder.loss(kIds, 77);
    adapter.a[i] = saved;
    EXPECT_LE(relative_error(decoder.gradient(5).a[i], (plus - minus) / (2 * h)), 1e-4);
  }
  // Another seed draws other masks: a different loss.
  EXPECT_NE(decoder.loss(kIds, 77), decoder.loss(kIds, 78));
}

TEST(LoraTraining, FloatPathMatchesFloat64) {
  TinyModel tiny(6);
  const auto doubles = random_adapters<double>(*tiny.model, 7);
  std::map<std::string, std::shared_ptr<LoraAdapter>> floats;
  for (const auto& [path, adapter] : doubles) {
    auto copy = std::make_shared<LoraAdapter>(adapter->rank, adapter->in_features,
                                              adapter->out_features, 1.5f);
    copy->a.assign(adapter->a.begin(), adapter->a.end());
    copy->b.assign(adapter->b.begin(), adapter->b.end());
    floats[path] = copy;
  }
  TrainableDecoder<double> reference(*tiny.model, doubles);
  TrainableDecoder<float> tested(*tiny.model, floats);
  const double reference_loss = reference.accumulate(kIds, 0.25);
  const double tested_loss = tested.accumulate(kIds, 0.25);
  EXPECT_NEAR(tested_loss, reference_loss, 1e-5 * reference_loss);
  for (std::size_t m = 0; m < reference.paths().size(); ++m) {
    for (auto [want, got] : {std::pair{&reference.gradient(m).a, &tested.gradient(m).a},
                             {&reference.gradient(m).b, &tested.gradient(m).b}}) {
      double norm = 0.0;
      for (double value : *want) norm = std::max(norm, std::fabs(value));
      for (std::size_t i = 0; i < want->size(); ++i) {
        ASSERT_NEAR((*got)[i], (*want)[i], 1e-4 * norm + 1e-7) << reference.paths()[m];
      }
    }
  }
}

// grad_x = g·W through each Weight type's matmul_transposed equals the product
// with the dequantized matrix.
TEST(MatmulTransposed, EveryWeightTypeMatchesDequantizedProduct) {
  const auto& base = test::bundled().model;
  std::vector<std::shared_ptr<Model>> models = {std::const_pointer_cast<Model>(base)};
  for (const auto& [backend, bits] : std::vector<std::pair<std::string, int>>{{"mlx", 4},
                                                                              {"mlx", 3},
                                                                              {"quanto", 8},
                                                                              {"quanto", 4},
                                                                              {"bnb", 4},
                                                                              {"bnb", 8},
                                                                              {"custom", 4}}) {
    UnifiedQuantizationConfig config;
    config.backend = backend;
    config.bits = bits;
    models.push_back(quantize_model(base, config).first);
  }
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const auto& model : models) {
    for (const auto& [path, weight] : model->named_weights()) {
      if (path.find("layers.1.") == std::string::npos) continue;
      const std::int64_t out = weight->out_features();
      const std::int64_t in = weight->in_features();
      const std::int64_t rows = 5;
      std::vector<float> g(static_cast<std::size_t>(rows * out));
      for (auto& value : g) value = normal(rng);
      std::vector<float> dense(static_cast<std::size_t>(out * in));
      weight->dequantize_rows(0, out, dense.data());
      std::vector<float> got(static_cast<std::size_t>(rows * in));
      weight->matmul_transposed(g.data(), rows, got.data());
      double worst = 0.0, scale = 0.0;
      for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t i = 0; i < in; ++i) {
          double want = 0.0;
          for (std::int64_t o = 0; o < out; ++o) want += double(g[r * out + o]) * dense[o * in + i];
          worst = std::max(worst, std::fabs(want - got[r * in + i]));
          scale = std::max(scale, std::fabs(want));
        }
      }
      EXPECT_LE(worst, 1e-5 * scale) << path << " " << weight->describe();
    }
  }
}

TEST(LoraWeight, AddsScaledLowRankProduct) {
  TinyModel tiny(10);
  const auto attached = attach_lora(*tiny.model, LoraConfig{.rank = 4, .alpha = 8.0}, 3);
  ASSERT_EQ(attached.size(), 14u);
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const NamedLoraAdapter& named = attached[4];  // layer 0 gate_proj [24, 16]
  EXPECT_EQ(named.path, "model.layers.0.mlp.gate_proj");
  for (auto& value : named.adapter->b) value = normal(rng);
  const Weight& lora = *tiny.model->layers()[0].gate_proj;
  std::vector<float> x(2 * 16);
  for (auto& value : x) value = normal(rng);
  std::vector<float> y(2 * 24), base(2 * 24);
  lora.matmul(x.data(), 2, y.data());
  named.base->matmul(x.data(), 2, base.data());
  const LoraAdapter& a = *named.adapter;
  EXPECT_FLOAT_EQ(a.scale, 2.0f);
  for (int r = 0; r < 2; ++r) {
    for (int o = 0; o < 24; ++o) {
      double extra = 0.0;
      for (int k = 0; k < 4; ++k) {
        double ax = 0.0;
        for (int i = 0; i < 16; ++i) ax += double(a.a[k * 16 + i]) * x[r * 16 + i];
        extra += double(a.b[o * 4 + k]) * ax;
      }
      EXPECT_NEAR(y[r * 24 + o], base[r * 24 + o] + 2.0 * extra, 1e-4);
    }
  }
  // PEFT init: A within ±1/sqrt(in), not all zero.
  double largest = 0.0;
  for (float value : attached[0].adapter->a) largest = std::max(largest, double(std::fabs(value)));
  EXPECT_LE(largest, 1.0 / std::sqrt(16.0));
  EXPECT_GT(largest, 0.5 / std::sqrt(16.0));
  EXPECT_EQ(tiny.model->lora_parameters().size(), 14u);
  EXPECT_THROW(attach_lora(*tiny.model, LoraConfig{}), Error);  // already attached
}

TEST(LoraAttach, PatternThatMatchesNothingIsAnError) {
  TinyModel tiny(12);
  LoraConfig config;
  config.target_modules = {"q_proj", "nonexistent_proj"};
  EXPECT_THROW(attach_lora(*tiny.model, config), Error);
  config.target_modules = {"model.layers.1.self_attn"};
  EXPECT_EQ(attach_lora(*tiny.model, config).size(), 4u);
}

TEST(AdamW, MatchesTheTorchUpdateRule) {
  AdamW optimizer({.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.1});
  std::vector<float> value = {1.0f, -2.0f};
  const std::vector<float> gradient = {0.5f, -0.25f};
  const std::vector<ParameterRef> parameters = {{value, gradient}};
  optimizer.step(parameters, 0.01);
  // Step 1: m̂ = g, v̂ = g², so the update is lr·g/(|g| + eps) after decay.
  EXPECT_NEAR(value[0], 1.0 * (1 - 0.001) - 0.01, 1e-6);
  EXPECT_NEAR(value[1], -2.0 * (1 - 0.001) + 0.01, 1e-6);
  optimizer.step(parameters, 0.01);
  const double m = 0.9 * 0.1 * 0.5 + 0.1 * 0.5, v = 0.999 * 0.001 * 0.25 + 0.001 * 0.25;
  const double expected = (1.0 * 0.999 - 0.01) * 0.999 -
                          0.01 * (m / 0.19) / (std::sqrt(v / (1 - 0.999 * 0.999)) + 1e-8);
  EXPECT_NEAR(value[0], expected, 1e-6);
  EXPECT_EQ(optimizer.steps_taken(), 2);
}

TEST(LrSchedule, WarmsUpLinearlyThenDecaysAlongACosine) {
  const LrSchedule schedule{.peak = 1e-3, .warmup_steps = 10, .total_steps = 110};
  EXPECT_DOUBLE_EQ(schedule.at(0), 0.0);
  EXPECT_DOUBLE_EQ(schedule.at(5), 5e-4);
  EXPECT_DOUBLE_EQ(schedule.at(10), 1e-3);
  EXPECT_NEAR(schedule.at(60), 5e-4, 1e-15);
  EXPECT_NEAR(schedule.at(110), 0.0, 1e-15);
}

TEST(LrSchedule, ConstantAndLinearDecayAfterTheWarmUp) {
  const LrSchedule constant{
      .peak = 1e-3, .warmup_steps = 10, .total_steps = 110, .decay = LrDecay::constant};
  EXPECT_DOUBLE_EQ(constant.at(5), 5e-4);
  EXPECT_DOUBLE_EQ(constant.at(10), 1e-3);
  EXPECT_DOUBLE_EQ(constant.at(109), 1e-3);
  const LrSchedule linear{
      .peak = 1e-3, .warmup_steps = 0, .total_steps = 100, .decay = LrDecay::linear};
  EXPECT_DOUBLE_EQ(linear.at(0), 1e-3);
  EXPECT_NEAR(linear.at(25), 7.5e-4, 1e-15);
  EXPECT_NEAR(linear.at(100), 0.0, 1e-15);
  EXPECT_EQ(parse_lr_decay("cosine"), LrDecay::cosine);
  EXPECT_STREQ(lr_decay_name(parse_lr_decay("linear")), "linear");
  try {
    parse_lr_decay("step");
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("--lr-schedule"), std::string::npos);
  }
}

TEST(GradientClipping, ScalesToTheMaxNormOnlyWhenAbove) {
  std::vector<float> a = {3.0f}, b = {4.0f};
  std::vector<std::vector<float>*> gradients = {&a, &b};
  EXPECT_DOUBLE_EQ(clip_gradient_norm(gradients, 10.0), 5.0);
  EXPECT_FLOAT_EQ(a[0], 3.0f);
  EXPECT_DOUBLE_EQ(clip_gradient_norm(gradients, 1.0), 5.0);
  EXPECT_NEAR(std::hypot(a[0], b[0]), 1.0, 1e-6);
}

// The training forward computes what inference computes: on the 4-bit model
// with adapters, its summed NLL equals the one from Model::forward's logits.
TEST(LoraTraining, TrainingForwardMatchesInferenceOnAQuantizedModel) {
  UnifiedQuantizationConfig config;
  config.backend = "mlx";
  config.bits = 4;
  const auto model = quantize_model(test::bundled().model, config).first;
  std::mt19937 rng(13);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::map<std::string, std::shared_ptr<LoraAdapter>> trained;
  for (const auto& named : attach_lora(*model, LoraConfig{.rank = 8, .alpha = 16.0}, 1)) {
    for (auto& value : named.adapter->b) value = normal(rng);
    trained[named.path] = named.adapter;
  }
  const std::vector<std::int32_t> ids(test::bundled().val_ids.begin() + 100,
                                      test::bundled().val_ids.begin() + 228);
  const std::vector<float> logits = model->forward(ids);
  const std::int64_t vocab = model->config().vocab_size;
  double expected = 0.0;
  for (std::size_t t = 0; t + 1 < ids.size(); ++t) {
    expected += negative_log_likelihood(
        std::span<const float>(logits).subspan(t * vocab, static_cast<std::size_t>(vocab)),
        ids[t + 1]);
  }
  TrainableDecoder<float> decoder(*model, trained);
  EXPECT_NEAR(decoder.loss(ids), expected, 1e-5 * expected);
}

// FinetuneOptions::device: "cpu" stays on the CPU, "auto" takes the GPU only where one is
// usable, "cuda" without one and unknown names are refused naming --device.
TEST(Trainer, ResolvesTheDeviceOption) {
  const std::vector<std::int32_t> ids(test::bundled().val_ids.begin(),
                                      test::bundled().val_ids.begin() + 256);
  const auto trainer_on = [&](const std::string& device) {
    FinetuneOptions options;
    options.ctx = 64;
    options.device = device;
    return Trainer(load_model(test::bundled_model()), ids, options).device();
  };
  EXPECT_EQ(trainer_on("cpu"), "cpu");
  EXPECT_EQ(trainer_on("auto"), cuda_available() ? "cuda" : "cpu");
  if (!cuda_available()) {
    EXPECT_THROW(
        try { trainer_on("cuda"); } catch (const Error& error) {
          EXPECT_NE(std::string(error.what()).find("--device cuda"), std::string::npos)
              << error.what();
          throw;
        },
        Error);
  }
  EXPECT_THROW(
      try { trainer_on("tpu"); } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("--device"), std::string::npos) << error.what();
        throw;
      },
      Error);
}

// The C++ API of the issue: enable_lora attaches fresh adapters in
// quantize_model, and a user loop over lora_parameters() with AdamW trains them.
TEST(LoraApi, EnableLoraAttachesAdaptersAUserLoopCanTrain) {
  UnifiedQuantizationConfig config;
  config.backend = "mlx";
  config.bits = 4;
  config.enable_lora = true;
  config.lora_rank = 4;
  const auto [model, quantizer] = quantize_model(test::bundled().model, config);
  const auto adapters = model->lora_parameters();
  ASSERT_EQ(adapters.size(), 28u);
  EXPECT_EQ(adapters[0].adapter->rank, 4);
  EXPECT_FLOAT_EQ(adapters[0].adapter->scale, 2.0f);
  config.enable_lora = false;
  const auto plain = quantize_model(test::bundled().model, config).first;
  const std::vector<std::int32_t> ids(test::bundled().val_ids.begin(),
                                      test::bundled().val_ids.begin() + 64);
  EXPECT_EQ(model->forward(ids), plain->forward(ids));  // B = 0: unchanged

  std::map<std::string, std::shared_ptr<LoraAdapter>> trained;
  for (const auto& named : adapters) trained[named.path] = named.adapter;
  TrainableDecoder<float> decoder(*model, trained);
  AdamW optimizer;
  double first_loss = 0.0, last_loss = 0.0;
  for (int step = 0; step < 4; ++step) {
    decoder.zero_gradients();
    const double loss = decoder.accumulate(ids, 1.0 / 63) / 63;
    if (step == 0) first_loss = loss;
    last_loss = loss;
    std::vector<ParameterRef> parameters;
    for (std::size_t i = 0; i < decoder.paths().size(); ++i) {
      parameters.push_back({decoder.adapter(i).a, decoder.gradient(i).a});
      parameters.push_back({decoder.adapter(i).b, decoder.gradient(i).b});
    }
    optimizer.step(parameters, 1e-2);
  }
  EXPECT_LT(last_loss, first_loss - 0.05);
  // The inference model shares the adapters: its logits moved too.
  EXPECT_NE(model->forward(ids), plain->forward(ids));
  // save_model writes the frozen weights only; they load back as the plain model.
  test::TempDir dir;
  quantizer.save_model(*model, dir / "saved");
  EXPECT_EQ(quantizer.load_model(dir / "saved")->forward(ids), plain->forward(ids));
}

}  // namespace
}  // namespace uq
