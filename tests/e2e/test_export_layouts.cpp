// `uq export MODEL --format mlx|quanto|bnb|custom`: a quantized model in another backend's
// layout with nothing re-quantized. The export loads here with bit-identical logits, and the
// other ecosystem's own library loads it: mlx-lm a quanto qint4 model exported as mlx, and
// optimum-quanto an mlx 4-bit group-128 model and a custom int8 model exported as quanto
// (logits within float32 summation order, 1e-5 relative L2, as the backends' own oracle tests).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "io/formats/layout_writer.hpp"
#include "io/formats/mlx_layout.hpp"
#include "quant/affine_weight.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

using test::TempDir;

const std::string kIds = "1183,259,2430,424,3130,259,892,271,259,727,14";

void quantize(const std::filesystem::path& out, const std::vector<std::string>& options) {
  std::vector<std::string> args{"quantize", test::bundled_model().string(), "-o", out.string(),
                                "--quiet"};
  args.insert(args.end(), options.begin(), options.end());
  const auto result = test::run_uq(args);
  ASSERT_EQ(result.exit_code, 0) << result.err;
}

std::vector<float> our_logits(const std::filesystem::path& model,
                              const std::filesystem::path& out) {
  const auto result = test::run_uq({"logits", model.string(), "--ids", kIds, "-o", out.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return test::read_f32_tensor(out, "logits");
}

void export_as(const std::filesystem::path& model, const std::string& format,
               const std::filesystem::path& out) {
  const auto result =
      test::run_uq({"export", model.string(), "--format", format, "-o", out.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("in the " + format + " layout"), std::string::npos) << result.out;
}

// The bundled model quantized with `options`, exported as `format` into <dir>/export: our logits
// of the export equal the source's, and (with the venv) `oracle_script`'s "logits" command, the
// target ecosystem's own library, loads the export with the same logits.
void check_export(const TempDir& dir, const std::vector<std::string>& options,
                  const std::string& format, const std::string& oracle_script) {
  quantize(dir / "source", options);
  export_as(dir / "source", format, dir / "export");
  const auto source = our_logits(dir / "source", dir / "source.safetensors");
  const auto exported = our_logits(dir / "export", dir / "exported.safetensors");
  EXPECT_EQ(exported, source);

  if (!test::python_available()) GTEST_SKIP() << "oracle venv not installed";
  const auto oracle = test::run_oracle(
      oracle_script,
      {"logits", (dir / "export").string(), (dir / "theirs.safetensors").string(), "--ids", kIds});
  ASSERT_EQ(oracle.exit_code, 0) << oracle.err;
  EXPECT_LT(
      test::relative_l2(exported, test::read_f32_tensor(dir / "theirs.safetensors", "logits")),
      1e-5);
}

// quanto qint4 (affine, groups of 128, float shifts) as mlx-lm's affine layout.
TEST(ExportLayouts, QuantoAsMlxKeepsTheLogitsAndLoadsInMlxLm) {
  TempDir dir;
  check_export(dir, {"--backend", "quanto", "--bits", "4"}, "mlx", "mlx_lm_oracle.py");
  EXPECT_FALSE(std::filesystem::exists(dir / "export" / "quantization_map.json"));
}

// mlx 4-bit, groups of 128 (quanto's group for in_features 256 and 512), embeddings kept float
// (quanto quantizes Linear layers only) as optimum-quanto's layout.
TEST(ExportLayouts, MlxAsQuantoKeepsTheLogitsAndLoadsInOptimumQuanto) {
  TempDir dir;
  check_export(
      dir,
      {"--backend", "mlx", "--bits", "4", "--group-size", "128", "--skip", "model.embed_tokens"},
      "quanto", "quanto_oracle.py");
  EXPECT_TRUE(std::filesystem::exists(dir / "export" / "quantization_map.json"));
}

// custom symmetric int8 (fp32 scales per output channel) as quanto's qint8.
TEST(ExportLayouts, CustomInt8AsQuantoKeepsTheLogitsAndLoadsInOptimumQuanto) {
  TempDir dir;
  check_export(dir, {"--backend", "custom", "--bits", "8", "--skip", "model.embed_tokens"},
               "quanto", "quanto_oracle.py");
}

// Exporting into the model's own layout rewrites the same tensors.
TEST(ExportLayouts, OwnLayoutRoundTripsByteForByte) {
  TempDir dir;
  quantize(dir / "bnb", {"--backend", "bnb", "--bits", "4"});
  export_as(dir / "bnb", "bnb", dir / "again");
  EXPECT_EQ(test::read_text(dir / "again" / "model.safetensors"),
            test::read_text(dir / "bnb" / "model.safetensors"));
}

// quanto picks groups of 96 (or the whole row) for some widths (SmolLM's 576, 960); mlx's affine
// quantization takes 32, 64 or 128 only, so the mlx layout refuses the rest by module name.
TEST(ExportLayouts, MlxLayoutRefusesGroupsMlxCannotRead) {
  std::vector<float> values(8 * 192);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = std::sin(0.1f * float(i));
  const auto encoder = mlx_encoder(MlxQuantization{4, 64, {}});
  const auto g64 = AffineWeight::quantize(values.data(), DType::F32, 8, 192, 4, 64, "w");
  EXPECT_EQ(encoder->module_tensors("model.layers.0.mlp.up_proj", *g64).size(), 3u);
  const auto g96 = AffineWeight::quantize(values.data(), DType::F32, 8, 192, 4, 96, "w");
  try {
    encoder->module_tensors("model.layers.0.mlp.down_proj", *g96);
    ADD_FAILURE() << "group 96 was written";
  } catch (const Error& error) {
    EXPECT_STREQ(error.what(),
                 "model.layers.0.mlp.down_proj: affine groups of 96; the mlx-lm layout holds "
                 "groups of 32, 64 or 128");
  }
}

}  // namespace
}  // namespace uq
