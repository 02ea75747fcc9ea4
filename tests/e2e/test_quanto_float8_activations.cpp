// quanto's qfloat8 weights and activation quantization end to end: the raw
// layout, `uq quantize --json`, `uq eval`, save -> load, and real
// optimum-quanto both ways (its quantize / Calibration / freeze / save, and
// its requantize of our directories).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "api/quantize.hpp"
#include "calibration/calibrate_model.hpp"
#include "io/safetensors.hpp"
#include "model/decoder.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

using test::TempDir;

const std::string kIds = "1183,259,2430,424,3130,259,892,271,259,727,14";
constexpr int kSamples = 4;
constexpr std::int64_t kCtx = 32;

std::vector<float> our_logits(const std::filesystem::path& model_dir, const TempDir& dir) {
  const auto out = dir / "ours.safetensors";
  const auto result =
      test::run_uq({"logits", model_dir.string(), "--ids", kIds, "-o", out.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return test::read_f32_tensor(out, "logits");
}

// Every tensor of `expected` is in `actual` with the same dtype, shape and bytes.
void expect_same_tensors(const std::filesystem::path& expected,
                         const std::filesystem::path& actual) {
  const auto theirs = Checkpoint::open(expected);
  const auto ours = Checkpoint::open(actual);
  EXPECT_EQ(theirs.names(), ours.names());
  for (const auto& name : theirs.names()) {
    const auto a = theirs.tensor(name);
    const auto b = ours.tensor(name);
    ASSERT_EQ(a.dtype, b.dtype) << name;
    ASSERT_EQ(a.shape, b.shape) << name;
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << name;
  }
}

UnifiedQuantizationConfig quanto_config(const std::string& weights,
                                        const std::string& activations) {
  UnifiedQuantizationConfig config;
  config.backend = "quanto";
  config.bits = 8;
  config.quanto_weights = weights;
  config.quanto_activations = activations;
  if (activations != "none") {
    config.calibration_data = test::source_path("data/train.txt").string();
    config.calibration_samples = kSamples;
    config.calibration_ctx = kCtx;
  }
  return config;
}

// ---- layout and CLI ----------------------------------------------------------

TEST(QuantoFloat8Layout, KeysDtypesShapesMapAndJson) {
  TempDir dir;
  const auto out = dir / "q";
  const auto result = test::run_uq({"quantize",
                                    test::bundled_model().string(),
                                    "-o",
                                    out.string(),
                                    "--backend",
                                    "quanto",
                                    "--bits",
                                    "8",
                                    "--weights",
                                    "qfloat8_e5m2",
                                    "--activations",
                                    "qint8",
                                    "--calibration-data",
                                    test::source_path("data/train.txt").string(),
                                    "--calibration-samples",
                                    "4",
                                    "--calibration-ctx",
                                    "32",
                                    "--json",
                                    "--quiet"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto summary = nlohmann::json::parse(result.out);
  EXPECT_EQ(summary["backend"], "quanto");
  EXPECT_EQ(summary["device"], "cpu");
  EXPECT_EQ(summary["quanto_activations"], "qint8");
  const auto checkpoint = Checkpoint::open(out);
  const std::string q = "model.layers.2.mlp.down_proj";
  const auto data = checkpoint.tensor(q + ".weight._data");
  EXPECT_EQ(data.dtype, DType::F8_E5M2);
  EXPECT_EQ(data.shape, (std::vector<std::int64_t>{256, 768}));
  const auto scale = checkpoint.tensor(q + ".weight._scale");
  EXPECT_EQ(scale.dtype, DType::BF16);
  EXPECT_EQ(scale.shape, (std::vector<std::int64_t>{256, 1}));
  for (const char* name : {".input_scale", ".output_scale"}) {
    const auto view = checkpoint.tensor(q + name);
    EXPECT_EQ(view.dtype, DType::BF16) << name;
    EXPECT_TRUE(view.shape.empty()) << name;
    const float value = view.to_f32()[0];
    EXPECT_GT(value, 0.0f) << name;
    EXPECT_NE(value, 1.0f) << name << " was not calibrated";
  }
  EXPECT_FALSE(checkpoint.contains("model.embed_tokens.weight._data"));
  const auto map = test::read_json(out / "quantization_map.json");
  EXPECT_EQ(map[q], (nlohmann::json{{"weights", "qfloat8_e5m2"}, {"activations", "qint8"}}));
  EXPECT_EQ(map.size(), 4u * 7u + 1u);

  // uq eval on the first 8 KiB of val.txt, against the float model's perplexity
  // (on all of val.txt: 54.15 against 53.72).
  const auto text = dir / "val_head.txt";
  std::ofstream(text) << test::read_text(test::source_path("data/val.txt")).substr(0, 8192);
  const auto ppl = [&](const std::filesystem::path& model) {
    const auto eval = test::run_uq(
        {"eval", model.string(), "--data", text.string(), "--ctx", "128", "--json", "--quiet"});
    EXPECT_EQ(eval.exit_code, 0) << eval.err;
    return nlohmann::json::parse(eval.out)["ppl"].get<double>();
  };
  const double quantized = ppl(out);
  const double reference = ppl(test::bundled_model());
  EXPECT_GT(quantized, reference * 0.99);
  EXPECT_LT(quantized, reference * 1.05);
}

TEST(QuantoFloat8Layout, RoundTripGivesIdenticalLogits) {
  for (const auto& [weights, activations] :
       {std::pair{"qfloat8_e4m3fn", "none"}, std::pair{"qfloat8_e5m2", "none"},
        std::pair{"qint", "qint8"}, std::pair{"qfloat8", "qfloat8"},
        std::pair{"qint", "qfloat8_e5m2"}}) {
    TempDir dir;
    auto [model, quantizer] =
        quantize_model(test::bundled().model, quanto_config(weights, activations));
    quantizer.save_model(*model, dir / "q");
    const auto loaded = quantizer.load_model(dir / "q");
    const std::vector<std::int32_t> ids{1183, 259, 2430, 424, 3130, 259, 892};
    EXPECT_EQ(model->forward(ids), loaded->forward(ids)) << weights << " / " << activations;
    EXPECT_EQ(model->named_weights().back().second->describe(),
              loaded->named_weights().back().second->describe());
  }
}

// `--backend auto` (the default) picks quanto for activation quantization and
// says why in --json; plain 4-bit requests get mlx.
TEST(QuantoFloat8Layout, AutoChoosesQuantoForActivations) {
  TempDir dir;
  const auto result =
      test::run_uq({"quantize", test::bundled_model().string(), "-o", (dir / "a").string(),
                    "--bits", "8", "--activations", "qfloat8", "--calibration-data",
                    test::source_path("data/train.txt").string(), "--calibration-samples", "2",
                    "--calibration-ctx", "16", "--json", "--quiet"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto summary = nlohmann::json::parse(result.out);
  EXPECT_EQ(summary["backend"], "quanto");
  EXPECT_NE(summary["backend_reason"].get<std::string>().find("activation"), std::string::npos);
  EXPECT_EQ(test::read_json(dir / "a" / "quantization_map.json")["lm_head"]["activations"],
            "qfloat8_e4m3fn");
  const auto plain = test::run_uq({"quantize", test::bundled_model().string(), "-o",
                                   (dir / "b").string(), "--bits", "4", "--json", "--quiet"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(nlohmann::json::parse(plain.out)["backend"], "mlx");
}

// `--memory-efficient` streams the matrices one at a time into the same files.
TEST(QuantoFloat8Layout, StreamingWritesTheSameFiles) {
  TempDir dir;
  for (const bool streamed : {false, true}) {
    std::vector<std::string> argv{"quantize",  test::bundled_model().string(),
                                  "-o",        (dir / (streamed ? "s" : "m")).string(),
                                  "--backend", "quanto",
                                  "--bits",    "8",
                                  "--weights", "qfloat8_e5m2",
                                  "--quiet"};
    if (streamed) argv.push_back("--memory-efficient");
    ASSERT_EQ(test::run_uq(argv).exit_code, 0);
  }
  test::expect_same_files(dir / "m", dir / "s");
}

TEST(QuantoFloat8Layout, BadOptionsNameTheOption) {
  TempDir dir;
  struct Case {
    std::vector<std::string> args;
    std::string culprit;
  };
  for (const auto& [args, culprit] :
       {Case{{"--backend", "quanto", "--bits", "8", "--weights", "qfloat9"},
             "quanto_weights 'qfloat9'"},
        Case{{"--backend", "quanto", "--weights", "qfloat8", "--bits", "4"}, "bits is 4"},
        Case{{"--backend", "quanto", "--bits", "8", "--activations", "qint8"},
             "needs calibration_data"},
        Case{{"--backend", "quanto", "--bits", "8", "--activations", "qint4"},
             "unknown activation qtype 'qint4'"},
        Case{{"--weights", "qfloat8", "--backend", "mlx", "--bits", "8"},
             "need backend 'quanto'"}}) {
    std::vector<std::string> argv{"quantize", test::bundled_model().string(), "-o",
                                  (dir / "x").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto result = test::run_uq(argv);
    EXPECT_NE(result.exit_code, 0) << culprit;
    EXPECT_EQ(result.err.rfind("error: ", 0), 0u) << result.err;
    EXPECT_NE(result.err.find(culprit), std::string::npos) << result.err;
  }
}

// A quantization map naming an unknown activation qtype, or activations
// without their scales, is refused with one error line naming the culprit.
TEST(QuantoFloat8Layout, DamagedMapOrScalesGiveOneErrorLine) {
  TempDir dir;
  auto [model, quantizer] = quantize_model(test::bundled().model, quanto_config("qfloat8", "none"));
  quantizer.save_model(*model, dir / "q");
  const std::string q = "model.layers.1.self_attn.v_proj";
  auto map = test::read_json(dir / "q" / "quantization_map.json");
  map[q]["activations"] = "qint3";
  std::ofstream(dir / "q" / "quantization_map.json") << map.dump();
  const auto logits = [&] {
    return test::run_uq(
        {"logits", (dir / "q").string(), "--ids", "1,2", "-o", (dir / "l.safetensors").string()});
  };
  auto result = logits();
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(result.err.rfind("error: ", 0), 0u) << result.err;
  EXPECT_NE(result.err.find("'" + q + "' activations"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("qint3"), std::string::npos) << result.err;

  map[q]["activations"] = "qint8";  // but input_scale is 1 and stays: valid
  std::ofstream(dir / "q" / "quantization_map.json") << map.dump();
  EXPECT_EQ(logits().exit_code, 0);
  std::ofstream(dir / "q" / "quantization_map.json") << "{not json";
  result = logits();
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("quantization_map.json"), std::string::npos) << result.err;
}

// ---- real optimum-quanto ----------------------------------------------------

// Runs quanto_oracle.py commands (each an argument list) in one Python process.
void run_quanto_jobs(const TempDir& dir, const std::vector<std::vector<std::string>>& jobs) {
  const auto path = dir / "jobs.tsv";
  {
    std::ofstream file(path);
    for (const auto& job : jobs) {
      for (std::size_t i = 0; i < job.size(); ++i) file << (i == 0 ? "" : "\t") << job[i];
      file << "\n";
    }
  }
  const auto result = test::run_oracle("quanto_oracle.py", {"batch", path.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
}

std::vector<std::string> logits_job(const std::filesystem::path& model_dir,
                                    const std::filesystem::path& out) {
  return {"logits", model_dir.string(), out.string(), "--ids", kIds};
}

// quanto quantizes the bundled model to qfloat8 (e4m3fn and e5m2) and saves
// it: our quanto backend writes the same tensors byte for byte (codes and
// scales), its directory loads here, and ours loads with quanto's requantize
// with the same logits (float32 over the dequantized codes; quanto's own bf16
// forward within bf16 precision).
TEST(QuantoFloat8Oracle, BytesAndLogitsBothWays) {
  if (!test::python_available()) GTEST_SKIP() << "oracle venv not installed";
  const std::vector<std::string> qtypes{"qfloat8_e4m3fn", "qfloat8_e5m2"};
  TempDir dir;
  std::vector<std::vector<std::string>> quantize_jobs, logits_jobs;
  for (const auto& qtype : qtypes) {
    quantize_jobs.push_back({"quantize", test::bundled_model().string(),
                             (dir / ("quanto_" + qtype)).string(), "--weights", qtype});
    logits_jobs.push_back(logits_job(dir / ("ours_" + qtype), dir / (qtype + ".safetensors")));
  }
  run_quanto_jobs(dir, quantize_jobs);
  for (const auto& qtype : qtypes) {
    auto [ours, quantizer] = quantize_model(test::bundled().model, quanto_config(qtype, "none"));
    quantizer.save_model(*ours, dir / ("ours_" + qtype));
    expect_same_tensors(dir / ("quanto_" + qtype), dir / ("ours_" + qtype));
    EXPECT_EQ(test::read_json(dir / ("quanto_" + qtype) / "quantization_map.json"),
              test::read_json(dir / ("ours_" + qtype) / "quantization_map.json"));
  }
  run_quanto_jobs(dir, logits_jobs);
  for (const auto& qtype : qtypes) {
    const auto reference = dir / (qtype + ".safetensors");
    const auto actual = our_logits(dir / ("quanto_" + qtype), dir);
    EXPECT_LT(test::relative_l2(actual, test::read_f32_tensor(reference, "logits")), 1e-5) << qtype;
    EXPECT_LT(test::relative_l2(actual, test::read_f32_tensor(reference, "logits_quanto")), 0.01)
        << qtype;
  }
}

// The calibration windows of quanto_config(..., activations), for the oracle.
std::filesystem::path write_windows(const TempDir& dir) {
  CalibrationOptions options;
  options.method = "quanto activations";
  options.calibration_data = test::source_path("data/train.txt").string();
  options.samples = kSamples;
  options.ctx = kCtx;
  const auto windows = load_windows(*test::bundled().model, options);
  std::vector<std::int64_t> ids;
  for (const auto& window : windows) ids.insert(ids.end(), window.begin(), window.end());
  const auto path = dir / "windows.safetensors";
  SafetensorsWriter writer(path);
  writer.add("windows", DType::I64, {kSamples, kCtx}, std::as_bytes(std::span(ids)));
  writer.commit();
  return path;
}

// Quantizing every linear's input and output turns float32 summation-order
// differences into whole code steps where a value sits at a rounding
// boundary, and those propagate: logits agree to ~1% with the float32 model
// of the same directory (measured 0-1.2%). Against quanto's own bf16 forward,
// and for quanto's scales (calibrated on bf16 activations: quanto's own bf16
// and float32 calibrations differ by up to 3.2% for qint8), the spread grows
// with the code step: measured up to 3.1% (logits) / 2.3% (scales) for qint8,
// 5.1% / 5.4% for qfloat8 (3 mantissa bits).
constexpr double kActivationTolerance = 0.03;

struct ActivationCase {
  std::string weights;         // ours
  std::string quanto_weights;  // quanto's name
  std::string activations;
  double bf16_tolerance;  // logits against quanto's bf16 forward; largest scale difference
};

// quanto: quantize(weights, activations) + `with Calibration(): model(window)`
// over the same windows + freeze + save, for qint8 weights with qint8
// activations and qfloat8 weights with qfloat8 activations. Its scales match
// ours (tolerance below), its directory gives here the logits of its model
// run in float32 (dequantized weights, activations quantized-dequantized with
// its scales), and our directory loads with requantize.
TEST(QuantoActivationOracle, CalibratedScalesAndLogitsBothWays) {
  if (!test::python_available()) GTEST_SKIP() << "oracle venv not installed";
  const std::vector<ActivationCase> cases{{"qint", "qint8", "qint8", 0.05},
                                          {"qfloat8", "qfloat8_e4m3fn", "qfloat8_e4m3fn", 0.08}};
  TempDir dir;
  const auto windows = write_windows(dir);
  std::vector<std::vector<std::string>> quantize_jobs, logits_jobs;
  for (const auto& param : cases) {
    const auto name = param.quanto_weights + "_" + param.activations;
    quantize_jobs.push_back({"quantize", test::bundled_model().string(),
                             (dir / ("quanto_" + name)).string(), "--weights", param.quanto_weights,
                             "--activations", param.activations, "--windows", windows.string()});
    logits_jobs.push_back(logits_job(dir / ("quanto_" + name), dir / ("theirs_" + name)));
    logits_jobs.push_back(logits_job(dir / ("ours_" + name), dir / ("mine_" + name)));
  }
  run_quanto_jobs(dir, quantize_jobs);
  for (const auto& param : cases) {
    const auto name = param.quanto_weights + "_" + param.activations;
    auto [ours, quantizer] =
        quantize_model(test::bundled().model, quanto_config(param.weights, param.activations));
    quantizer.save_model(*ours, dir / ("ours_" + name));
    EXPECT_EQ(test::read_json(dir / ("quanto_" + name) / "quantization_map.json"),
              test::read_json(dir / ("ours_" + name) / "quantization_map.json"));
    const auto theirs_checkpoint = Checkpoint::open(dir / ("quanto_" + name));
    const auto ours_checkpoint = Checkpoint::open(dir / ("ours_" + name));
    std::vector<std::pair<double, std::string>> errors;
    for (const auto& tensor : theirs_checkpoint.names()) {
      if (!tensor.ends_with("input_scale") && !tensor.ends_with("output_scale")) continue;
      const float theirs = theirs_checkpoint.tensor(tensor).to_f32()[0];
      const float mine = ours_checkpoint.tensor(tensor).to_f32()[0];
      errors.emplace_back(std::fabs(mine - theirs) / theirs, tensor);
    }
    ASSERT_EQ(errors.size(), 2u * (4u * 7u + 1u));
    std::sort(errors.begin(), errors.end());
    // The typical difference is a bf16 rounding step (median).
    EXPECT_LT(errors.back().first, param.bf16_tolerance) << name << ": " << errors.back().second;
    EXPECT_LT(errors[errors.size() / 2].first, 0.01) << name;
    std::cout << name << ": scale difference median " << errors[errors.size() / 2].first
              << ", largest " << errors.back().first << " (" << errors.back().second << ")\n";
  }
  run_quanto_jobs(dir, logits_jobs);
  for (const auto& param : cases) {
    const auto name = param.quanto_weights + "_" + param.activations;
    for (const auto& [model_dir, reference] :
         {std::pair{dir / ("quanto_" + name), dir / ("theirs_" + name)},
          std::pair{dir / ("ours_" + name), dir / ("mine_" + name)}}) {
      const auto here = our_logits(model_dir, dir);
      const double vs_float32 = test::relative_l2(here, test::read_f32_tensor(reference, "logits"));
      const double vs_quanto =
          test::relative_l2(here, test::read_f32_tensor(reference, "logits_quanto"));
      EXPECT_LT(vs_float32, kActivationTolerance) << model_dir;
      EXPECT_LT(vs_quanto, param.bf16_tolerance) << model_dir;
      std::cout << model_dir.filename().string() << " here: relative error " << vs_float32
                << " (float32), " << vs_quanto << " (quanto's bf16 forward)\n";
    }
  }
}

}  // namespace
}  // namespace uq
