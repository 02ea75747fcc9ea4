// quanto's qfloat8 weights, activation quantization numerics and the
// backend/device `auto` rule table, on small hand-checked inputs (torch's
// values where noted; the whole-model checks against quanto are in
// tests/e2e/test_quanto_float8_activations.cpp).
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <random>

#include "api/auto_backend.hpp"
#include "core/error.hpp"
#include "kernels/cpu/float8_kernels.hpp"
#include "model/float_weight.hpp"
#include "quant/float8.hpp"
#include "quant/float8_weight.hpp"
#include "quant/quanto_activation_weight.hpp"
#include "quant/quanto_activations.hpp"

namespace uq {
namespace {

std::vector<float> random_matrix(std::int64_t out, std::int64_t in, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> values(static_cast<std::size_t>(out * in));
  for (auto& value : values) value = normal(rng);
  return values;
}

TEST(Float8Quantize, ExactValuesScalesAndZeroRows) {
  // absmax 2 -> scale 2/448; W / scale = 224, -112, 56, 448: all exact in e4m3.
  const std::vector<float> w{1.0f, -0.5f, 0.25f, 2.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  const auto q = float8_quantize(w.data(), DType::F32, 2, 4, DType::F8_E4M3, DType::F32, "w");
  EXPECT_FLOAT_EQ(q.scales[0], 2.0f / 448.0f);
  EXPECT_EQ(q.scales[1], 0.0f);
  const std::vector<float> expected{224.0f, -112.0f, 56.0f, 448.0f};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(fp8_e4m3_to_f32(q.codes[i]), expected[i]) << i;
  for (int i = 4; i < 8; ++i) EXPECT_EQ(q.codes[i], 0) << i;
}

TEST(Float8Quantize, BoundedErrorAndBf16Scales) {
  const auto w = random_matrix(16, 64, 1);
  for (const auto& [format, half_ulp] :
       {std::pair{DType::F8_E4M3, 1.0f / 16}, std::pair{DType::F8_E5M2, 1.0f / 8}}) {
    const auto q = float8_quantize(w.data(), DType::F32, 16, 64, format, DType::BF16, "w");
    for (std::int64_t o = 0; o < 16; ++o) {
      const float scale = q.scales[o];
      EXPECT_EQ(scale, round_to_dtype(scale, DType::BF16));
      for (std::int64_t i = 0; i < 64; ++i) {
        const float value = w[o * 64 + i];
        const std::uint8_t code = q.codes[o * 64 + i];
        const float back =
            (format == DType::F8_E4M3 ? fp8_e4m3_to_f32(code) : fp8_e5m2_to_f32(code)) * scale;
        // In the codes' normal range: a relative half-ulp, plus the rounding
        // of W / scale to bf16.
        const float min_normal = format == DType::F8_E4M3 ? 1.0f / 64 : 1.0f / 16384;
        if (std::fabs(value) >= min_normal * scale) {
          EXPECT_LE(std::fabs(back - value), (half_ulp + 1.0f / 256) * std::fabs(value))
              << o << "," << i;
        }
      }
    }
  }
}

TEST(Float8Quantize, RejectsBadInput) {
  const std::vector<float> w{1.0f, NAN};
  EXPECT_THROW(float8_quantize(w.data(), DType::F32, 1, 2, DType::F8_E4M3, DType::F32, "m.weight"),
               Error);
  EXPECT_THROW(float8_quantize(w.data(), DType::F32, 1, 1, DType::I8, DType::F32, "m.weight"),
               Error);
}

TEST(Float8Weight, GemvAndGemmEqualTheDequantizedProduct) {
  const std::int64_t out = 48, in = 83;  // a tail after the 8-wide chunks
  const auto w = random_matrix(out, in, 2);
  for (const DType format : {DType::F8_E4M3, DType::F8_E5M2}) {
    const auto weight =
        Float8Weight::quantize(w.data(), DType::F32, out, in, format, DType::BF16, "w");
    std::vector<float> dense(static_cast<std::size_t>(out * in));
    weight->dequantize_rows(0, out, dense.data());
    for (const std::int64_t rows : {1, 3, 9}) {
      const auto x = random_matrix(rows, in, 3);
      std::vector<float> y(static_cast<std::size_t>(rows * out));
      weight->matmul(x.data(), rows, y.data());
      for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t o = 0; o < out; ++o) {
          double expected = 0;
          for (std::int64_t i = 0; i < in; ++i)
            expected += double(x[r * in + i]) * dense[o * in + i];
          EXPECT_NEAR(y[r * out + o], expected, 1e-5) << rows << " rows";
        }
      }
    }
    EXPECT_EQ(weight->storage_bytes(), static_cast<std::size_t>(out * in + out * 2));
  }
}

TEST(Float8Kernels, Avx2EqualsTheScalarTableForEveryCode) {
  // Every finite code in a row (NaN codes are refused on load), x = 1 on one
  // column at a time: the product reads back each code's value exactly.
  for (const DType format : {DType::F8_E4M3, DType::F8_E5M2}) {
    std::vector<std::uint8_t> codes;
    std::array<float, 256> decode{};
    for (int code = 0; code < 256; ++code) {
      const auto byte = static_cast<std::uint8_t>(code);
      decode[code] = format == DType::F8_E4M3 ? fp8_e4m3_to_f32(byte) : fp8_e5m2_to_f32(byte);
      if (std::isfinite(decode[code])) codes.push_back(byte);
    }
    const auto in = static_cast<std::int64_t>(codes.size());
    const float scale = 1.0f;
    const cpu::Float8Matrix matrix{codes.data(), &scale, decode.data(), 1, in, format};
    for (std::int64_t i = 0; i < in; ++i) {
      std::vector<float> x(static_cast<std::size_t>(in), 0.0f);
      x[i] = 1.0f;
      float avx2 = 0.0f, scalar = 0.0f;
      cpu::float8_gemv_rows(matrix, x.data(), 1, 0, 1, &avx2, cpu::KernelIsa::Avx2);
      cpu::float8_gemv_rows(matrix, x.data(), 1, 0, 1, &scalar, cpu::KernelIsa::Scalar);
      EXPECT_EQ(avx2, decode[codes[i]]) << dtype_name(format) << " code " << int(codes[i]);
      EXPECT_EQ(scalar, decode[codes[i]]);
    }
  }
}

TEST(Float8Weight, FromCodesChecksSizesAndValues) {
  const std::vector<std::byte> codes(6, std::byte{0x38});  // 1.0 in e4m3
  const std::vector<std::byte> scales(4, std::byte{0});
  EXPECT_NO_THROW(Float8Weight::from_codes(2, 3, DType::F8_E4M3, codes, DType::BF16, scales, "w"));
  EXPECT_THROW(Float8Weight::from_codes(3, 3, DType::F8_E4M3, codes, DType::BF16, scales, "w"),
               Error);
  EXPECT_THROW(Float8Weight::from_codes(2, 3, DType::I8, codes, DType::BF16, scales, "w"), Error);
  auto nan_codes = codes;
  nan_codes[1] = std::byte{0x7f};  // e4m3fn NaN
  try {
    Float8Weight::from_codes(2, 3, DType::F8_E4M3, nan_codes, DType::BF16, scales, "m.weight");
    FAIL() << "NaN code accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("m.weight"), std::string::npos);
  }
}

TEST(QuantoActivations, QuantizeDequantizeAsTorch) {
  std::vector<float> x{0.26f, -100.0f, 63.74f};
  quantize_dequantize_activation(x.data(), x.size(), DType::I8, 0.5f);
  EXPECT_EQ(x, (std::vector<float>{0.5f, -64.0f, 63.5f}));
  // torch: clamp(x / 0.5, ±fmax).to(float8).float() * 0.5 for x = 3, -1000, 0.07, 447.9.
  std::vector<float> e4m3{3.0f, -1000.0f, 0.07f, 447.9f};
  quantize_dequantize_activation(e4m3.data(), e4m3.size(), DType::F8_E4M3, 0.5f);
  EXPECT_EQ(e4m3, (std::vector<float>{3.0f, -224.0f, 0.0703125f, 224.0f}));
  std::vector<float> e5m2{3.0f, -1000.0f, 0.07f, 447.9f};
  quantize_dequantize_activation(e5m2.data(), e5m2.size(), DType::F8_E5M2, 0.5f);
  EXPECT_EQ(e5m2, (std::vector<float>{3.0f, -1024.0f, 0.0625f, 448.0f}));
}

TEST(QuantoActivations, AbsmaxScaleAndMomentumAsTorch) {
  const std::vector<float> x{-254.0f, 3.0f};
  EXPECT_EQ(activation_absmax_scale(x.data(), x.size(), DType::I8, DType::F32), 2.0f);
  EXPECT_EQ(activation_absmax_scale(x.data(), x.size(), DType::F8_E4M3, DType::F32),
            254.0f / 448.0f);
  // The initial scale 1 is replaced; then 0.9 * s + 0.1 * new, torch's bf16 values.
  EXPECT_EQ(updated_activation_scale(1.0f, 0.25f, DType::BF16), 0.25f);
  EXPECT_EQ(updated_activation_scale(0.5f, 0.25f, DType::BF16), 0.474609375f);
  EXPECT_EQ(updated_activation_scale(0.30078125f, 0.69921875f, DType::BF16), 0.341796875f);
}

TEST(QuantoActivations, QtypeNames) {
  EXPECT_EQ(activation_qtype("none", "o"), std::nullopt);
  EXPECT_EQ(activation_qtype("qfloat8", "o"), DType::F8_E4M3);
  EXPECT_EQ(activation_qtype_name(*activation_qtype("qfloat8", "o")), "qfloat8_e4m3fn");
  EXPECT_EQ(activation_qtype_name(*activation_qtype("qfloat8_e5m2", "o")), "qfloat8_e5m2");
  EXPECT_EQ(activation_qtype_name(*activation_qtype("qint8", "o")), "qint8");
  EXPECT_THROW(activation_qtype("qint4", "option x"), Error);
}

TEST(QuantoActivationWeight, QuantizesInputAndOutput) {
  // W = [[1, 2]]: x = (0.26, 0.9) -> input codes at scale 0.5: (0.5, 1.0) ->
  // W·x = 2.5 -> output at scale 0.75: round(3.33) * 0.75 = 2.25.
  const std::vector<float> w{1.0f, 2.0f};
  auto dense = std::make_shared<FloatWeight>(DType::F32, 1, 2, w.data());
  const QuantoActivationWeight weight(dense, DType::I8, DType::F32, {0.5f, 0.75f}, "w");
  const std::vector<float> x{0.26f, 0.9f};
  float y = 0.0f;
  weight.matmul(x.data(), 1, &y);
  EXPECT_EQ(y, 2.25f);
  EXPECT_EQ(weight.describe(), dense->describe() + " + qint8 activations");
  EXPECT_THROW(QuantoActivationWeight(dense, DType::I8, DType::F32, {0.0f, 1.0f}, "w"), Error);
  EXPECT_THROW(QuantoActivationWeight(dense, DType::I8, DType::F32, {1.0f, NAN}, "w"), Error);
  EXPECT_THROW(QuantoActivationWeight(dense, DType::U8, DType::F32, {1.0f, 1.0f}, "w"), Error);
}

// ---- auto -------------------------------------------------------------------

struct AutoCase {
  AutoRequest request;
  std::string backend, device;
};

AutoRequest request(int bits, std::string method = "rtn", bool lora = false,
                    bool activations = false, bool float8 = false, bool gpu = false,
                    std::string backend = "auto", std::string device = "auto") {
  AutoRequest r;
  r.bits = bits;
  r.method = std::move(method);
  r.lora = lora;
  r.quantized_activations = activations;
  r.float8_weights = float8;
  r.gpu_available = gpu;
  r.backend = std::move(backend);
  r.device = std::move(device);
  return r;
}

TEST(AutoBackend, RuleTable) {
  const std::vector<AutoCase> cases{
      {request(4), "mlx", "cpu"},
      {request(3), "mlx", "cpu"},
      {request(4, "rtn", false, false, false, true), "mlx", "cuda"},
      {request(8, "rtn", false, true), "quanto", "cpu"},
      {request(8, "rtn", false, true, false, true), "quanto", "cuda"},
      {request(8, "rtn", false, false, true), "quanto", "cpu"},
      {request(4, "gptq"), "mlx", "cpu"},
      {request(3, "awq", true, false, false, true), "mlx", "cuda"},  // method before LoRA
      {request(4, "rtn", true), "bnb", "cpu"},
      {request(4, "rtn", true, false, false, true), "bnb", "cuda"},
      {request(8, "rtn", true), "mlx", "cpu"},
      {request(4, "rtn", false, false, false, true, "custom"), "custom", "cuda"},
      {request(4, "rtn", false, false, false, false, "mlx", "cuda"), "mlx", "cuda"},
      {request(4, "rtn", false, false, false, true, "mlx", "cpu"), "mlx", "cpu"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto choice = choose_backend(cases[i].request);
    EXPECT_EQ(choice.backend, cases[i].backend) << "case " << i << ": " << choice.reason;
    EXPECT_EQ(choice.device, cases[i].device) << "case " << i << ": " << choice.reason;
    EXPECT_FALSE(choice.reason.empty());
  }
  EXPECT_EQ(choose_backend(request(4, "rtn", false, false, false, false, "bnb", "cpu")).reason,
            "requested");
  EXPECT_NE(choose_backend(request(8, "rtn", false, true)).reason.find("activation"),
            std::string::npos);
}

}  // namespace
}  // namespace uq
