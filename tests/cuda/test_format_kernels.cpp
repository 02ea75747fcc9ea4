// The CUDA path of every quantized format (FormatDeviceMatrix: decoded GEMV up to 16 rows,
// decoded tiles + sgemm beyond; LLM.int8; quanto activations; LoRA) against the CPU Weight's own
// matmul and dequantize_rows, the reference the formats are defined by.
// Fresh random weights and inputs every run, outputs poisoned (NaN) before each launch. Two
// parts of one format go through one DeviceLinear, so same-format parts are fused (q|k|v) and
// the result must equal both CPU products side by side. Shapes: odd out, in not a multiple of
// 64 where the format allows it (and not a multiple of 8 for bnb4 / int8 / symmetric / float8,
// so a bnb4 block spans two rows and chunks are masked). Rows 1, 3, 16 (GEMV), 17, 64 (tiles).
// Bounds: both sides are fp32 decodes of the same codes summed in different orders, relative L2
// <= 1e-5 (1e-6 for the gather, which only decodes). Quanto activations round the product to
// int8 / fp8 codes after it: a product within rounding of a code boundary may land on the
// neighbouring code, so there at most 1% of outputs may differ by one code step, the rest within
// the fp32 bound.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "kernels/cpu/affine_gemv_int8.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/device_linear.hpp"
#include "kernels/cuda/stream.hpp"
#include "quant/affine_weight.hpp"
#include "quant/bnb4_weight.hpp"
#include "quant/float8_weight.hpp"
#include "quant/ggml_weight.hpp"
#include "quant/int8_rowwise_weight.hpp"
#include "quant/quanto_activation_weight.hpp"
#include "quant/symmetric_weight.hpp"
#include "support/test_support.hpp"
#include "train/lora_weight.hpp"

namespace {

using uq::DType;
using uq::Weight;
using WeightPtr = std::shared_ptr<const Weight>;
using Factory = std::function<WeightPtr(const std::vector<float>& values, std::int64_t out,
                                        std::int64_t in, std::mt19937_64& rng)>;

constexpr double kProductBound = 1e-5;
constexpr double kGatherBound = 1e-6;

struct FormatCase {
  std::string name;
  std::int64_t in;
  Factory make;
  bool activations = false;  // outputs are quantized after the product
  float outlier = 0.0f;      // set one x column per row to this (LLM.int8 outliers)
};

std::vector<float> random_values(std::mt19937_64& rng, std::size_t count, float sigma) {
  std::normal_distribution<float> draw(0.0f, sigma);
  std::vector<float> values(count);
  for (auto& v : values) v = draw(rng);
  return values;
}

Factory affine(int bits, int group, DType params) {
  return [=](const std::vector<float>& values, std::int64_t out, std::int64_t in,
             std::mt19937_64&) -> WeightPtr {
    if (params == DType::F32) {
      return uq::AffineWeight::quantize(values.data(), DType::F32, out, in, bits, group, "w");
    }
    std::vector<std::uint16_t> half(values.size());
    for (std::size_t i = 0; i < values.size(); ++i)
      half[i] = params == DType::F16 ? uq::f32_to_f16(values[i]) : uq::f32_to_bf16(values[i]);
    return uq::AffineWeight::quantize(half.data(), params, out, in, bits, group, "w");
  };
}

Factory symmetric(int bits, DType scales) {
  return [=](const std::vector<float>& values, std::int64_t out, std::int64_t in,
             std::mt19937_64&) -> WeightPtr {
    return uq::SymmetricWeight::quantize(values.data(), DType::F32, out, in, bits, scales, "w");
  };
}

Factory float8(DType format, DType scales) {
  return [=](const std::vector<float>& values, std::int64_t out, std::int64_t in,
             std::mt19937_64&) -> WeightPtr {
    return uq::Float8Weight::quantize(values.data(), DType::F32, out, in, format, scales, "w");
  };
}

Factory bnb4(uq::bnb::FourBitType type, int blocksize, bool double_quant) {
  return [=](const std::vector<float>& values, std::int64_t out, std::int64_t in,
             std::mt19937_64&) -> WeightPtr {
    return uq::Bnb4Weight::quantize(values.data(), DType::F32, out, in, type, blocksize,
                                    double_quant, "w");
  };
}

Factory ggml(uq::GgmlType type) {
  return [=](const std::vector<float>& values, std::int64_t out, std::int64_t in,
             std::mt19937_64&) -> WeightPtr {
    return std::make_shared<uq::GgmlWeight>(uq::GgmlWeight::quantize(type, out, in, values.data()));
  };
}

Factory int8_rowwise() {
  return [](const std::vector<float>& values, std::int64_t out, std::int64_t in,
            std::mt19937_64&) -> WeightPtr {
    return uq::Int8RowwiseWeight::quantize(values.data(), DType::F32, out, in,
                                           uq::Int8RowwiseWeight::kDefaultThreshold, "w");
  };
}

Factory activations(Factory inner, DType qtype) {
  return [=](const std::vector<float>& values, std::int64_t out, std::int64_t in,
             std::mt19937_64& rng) -> WeightPtr {
    // Scales that put the inputs (sigma 1) and the products (sigma ~0.5) at a few dozen codes.
    const float qmax = qtype == DType::I8 ? 127.0f : (qtype == DType::F8_E4M3 ? 448.0f : 57344.0f);
    return std::make_shared<uq::QuantoActivationWeight>(
        inner(values, out, in, rng), qtype, DType::F32,
        uq::ActivationScales{4.0f / qmax, 3.0f / qmax}, "w");
  };
}

Factory lora(Factory base) {
  return [=](const std::vector<float>& values, std::int64_t out, std::int64_t in,
             std::mt19937_64& rng) -> WeightPtr {
    auto adapter = std::make_shared<uq::LoraAdapter>(8, in, out, 2.0f);
    adapter->a = random_values(rng, adapter->a.size(), 0.05f);
    adapter->b = random_values(rng, adapter->b.size(), 0.05f);
    return std::make_shared<uq::LoraWeight>(base(values, out, in, rng), adapter);
  };
}

std::vector<FormatCase> format_cases() {
  using uq::GgmlType;
  using uq::bnb::FourBitType;
  return {
      {"affine_b4_g32_f16", 160, affine(4, 32, DType::F16)},
      {"affine_b3_g64_f16", 320, affine(3, 64, DType::F16)},
      {"affine_b2_g96_f32", 288, affine(2, 96, DType::F32)},
      {"affine_b4_perchannel_f32", 96, affine(4, 96, DType::F32)},
      {"affine_b7_g32_bf16", 160, affine(7, 32, DType::BF16)},
      {"affine_b1_g32_bf16", 160, affine(1, 32, DType::BF16)},
      {"affine_b8_g128_f16", 384, affine(8, 128, DType::F16)},
      {"symmetric_int8_bf16", 201, symmetric(8, DType::BF16)},
      {"symmetric_int4_f32", 201, symmetric(4, DType::F32)},
      {"float8_e4m3_bf16", 203, float8(DType::F8_E4M3, DType::BF16)},
      {"float8_e5m2_f32", 203, float8(DType::F8_E5M2, DType::F32)},
      {"bnb_nf4_block64", 201, bnb4(FourBitType::NF4, 64, false)},
      {"bnb_fp4_block64_double", 201, bnb4(FourBitType::FP4, 64, true)},
      {"bnb_nf4_block128_double", 256, bnb4(FourBitType::NF4, 128, true)},
      {"int8_rowwise", 203, int8_rowwise(), false, 9.0f},
      {"int8_rowwise_no_outliers", 200, int8_rowwise()},
      {"ggml_q8_0", 160, ggml(GgmlType::Q8_0)},
      {"ggml_q4_0", 160, ggml(GgmlType::Q4_0)},
      {"ggml_q4_1", 160, ggml(GgmlType::Q4_1)},
      {"ggml_q5_0", 160, ggml(GgmlType::Q5_0)},
      {"ggml_q4_k", 768, ggml(GgmlType::Q4_K)},
      {"ggml_q6_k", 768, ggml(GgmlType::Q6_K)},
      {"ggml_f16", 100, ggml(GgmlType::F16)},
      {"ggml_bf16", 100, ggml(GgmlType::BF16)},
      {"ggml_f32", 100, ggml(GgmlType::F32)},
      {"quanto_int8_activations", 201, activations(symmetric(8, DType::F32), DType::I8), true},
      {"quanto_float8_activations", 203,
       activations(float8(DType::F8_E4M3, DType::F32), DType::F8_E4M3), true},
      {"quanto_int4_activations", 160, activations(affine(4, 32, DType::F32), DType::I8), true},
      {"lora_on_bnb_nf4", 201, lora(bnb4(FourBitType::NF4, 64, false))},
      {"lora_on_q4_k", 256, lora(ggml(GgmlType::Q4_K))},
      // Rows of several GEMV tiles (~1 KB of codes each), so that warps pipeline tiles and,
      // 103 outputs being few, split them over 2-8 warps whose sums the block adds.
      {"ggml_q4_0_tiles_split2", 4352, ggml(GgmlType::Q4_0)},
      {"ggml_q6_k_tiles_split4", 5376, ggml(GgmlType::Q6_K)},
      {"affine_b3_g64_f16_tiles_split2", 6144, affine(3, 64, DType::F16)},
      {"symmetric_int8_odd_tiles_split4", 5003, symmetric(8, DType::BF16)},
      {"bnb_nf4_double_tiles_split8", 18432, bnb4(FourBitType::NF4, 64, true)},
  };
}

class FormatKernelTest : public ::testing::TestWithParam<FormatCase> {
 protected:
  void SetUp() override {
    if (uq::cuda::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU";
    uq::cpu::set_exact_gemv(true);  // the CPU affine GEMV otherwise quantizes x to int8
  }
  void TearDown() override { uq::cpu::set_exact_gemv(false); }
};

// Outputs where got and want differ by more than `bound` * rms(want).
std::size_t count_far(const std::vector<float>& got, const std::vector<float>& want, double bound) {
  double sum = 0.0;
  for (const float v : want) sum += double(v) * v;
  const double limit = bound * std::sqrt(sum / static_cast<double>(want.size()));
  std::size_t far = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(double(got[i]) - want[i]) <= limit)) ++far;
  return far;
}

TEST_P(FormatKernelTest, ProductAndGatherEqualCpu) {
  const FormatCase& c = GetParam();
  std::mt19937_64 rng(std::random_device{}());
  const std::int64_t in = c.in;
  const std::int64_t outs[2] = {67, 36};
  std::vector<WeightPtr> weights;
  for (const auto out : outs) {
    weights.push_back(
        c.make(random_values(rng, static_cast<std::size_t>(out * in), 0.05f), out, in, rng));
  }
  const int total = static_cast<int>(outs[0] + outs[1]);
  std::vector<uq::cuda::DeviceLinear::Part> parts;
  for (const auto& weight : weights) parts.push_back({{"model.test", weight.get()}, nullptr});
  ASSERT_FALSE(uq::cuda::cuda_unsupported_reason(parts[0].weight).has_value());
  const uq::cuda::DeviceLinear linear(parts);
  const uq::cuda::CublasHandle cublas;
  uq::cuda::LinearScratch scratch;
  const uq::cuda::LinearContext context{nullptr, cublas.get(), &scratch};

  for (const int rows : {1, 3, 16, 17, 64}) {
    auto x = random_values(rng, static_cast<std::size_t>(rows * in), 1.0f);
    if (c.outlier != 0.0f) {
      for (int r = 0; r < rows; r += 2) x[static_cast<std::size_t>(r * in + 5 + r % 3)] = c.outlier;
    }
    std::vector<float> want(static_cast<std::size_t>(rows * total));
    for (std::size_t p = 0; p < weights.size(); ++p) {
      std::vector<float> part(static_cast<std::size_t>(rows * outs[p]));
      weights[p]->matmul(x.data(), rows, part.data());
      for (int r = 0; r < rows; ++r)
        for (std::int64_t o = 0; o < outs[p]; ++o)
          want[static_cast<std::size_t>(r * total + (p == 0 ? 0 : outs[0]) + o)] =
              part[static_cast<std::size_t>(r * outs[p] + o)];
    }
    uq::cuda::DeviceBuffer<float> device_x(x.size());
    device_x.upload(x);
    uq::cuda::DeviceBuffer<float> device_y(want.size());
    device_y.fill_bytes(0xFF);
    linear.apply(device_x.data(), rows, device_y.data(), total, false, context);
    std::vector<float> got(want.size());
    device_y.download(got);
    if (c.activations) {
      EXPECT_LE(count_far(got, want, 1e-5), want.size() / 100) << c.name << " rows " << rows;
      EXPECT_LT(uq::test::relative_l2(got, want), 5e-2) << c.name << " rows " << rows;
    } else {
      EXPECT_LT(uq::test::relative_l2(got, want), kProductBound) << c.name << " rows " << rows;
    }
  }

  // Embedding gather: rows of each part (repeats included) against dequantize_rows.
  for (std::size_t p = 0; p < weights.size(); ++p) {
    const uq::cuda::DeviceMatrix matrix({{"model.test", weights[p].get()}});
    std::uniform_int_distribution<std::int32_t> pick(0, static_cast<std::int32_t>(outs[p] - 1));
    std::vector<std::int32_t> ids(9);
    for (auto& id : ids) id = pick(rng);
    ids[3] = ids[1];
    ids[8] = static_cast<std::int32_t>(outs[p] - 1);
    std::vector<float> want(ids.size() * static_cast<std::size_t>(in));
    for (std::size_t t = 0; t < ids.size(); ++t)
      weights[p]->dequantize_rows(ids[t], 1, want.data() + t * static_cast<std::size_t>(in));
    uq::cuda::DeviceBuffer<std::int32_t> device_ids(ids.size());
    device_ids.upload(ids);
    uq::cuda::DeviceBuffer<float> device_out(want.size());
    device_out.fill_bytes(0xFF);
    matrix.gather(device_ids.data(), static_cast<int>(ids.size()), device_out.data(), nullptr);
    std::vector<float> got(want.size());
    device_out.download(got);
    EXPECT_LT(uq::test::relative_l2(got, want), kGatherBound) << c.name << " part " << p;
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, FormatKernelTest, ::testing::ValuesIn(format_cases()),
                         [](const ::testing::TestParamInfo<FormatCase>& param) {
                           return param.param.name;
                         });

// A Weight type with no CUDA kernel is still refused by name (no GPU needed).
class UnknownWeight final : public Weight {
 public:
  std::int64_t out_features() const override { return 2; }
  std::int64_t in_features() const override { return 2; }
  void matmul(const float*, std::int64_t, float*) const override {}
  void dequantize_rows(std::int64_t, std::int64_t, float*) const override {}
  std::size_t storage_bytes() const override { return 0; }
  std::string describe() const override { return "mystery format"; }
};

TEST(FormatKernelSupport, UnknownWeightTypeIsRefusedByName) {
  const UnknownWeight weight;
  const auto reason = uq::cuda::cuda_unsupported_reason({"model.layers.0.mlp.up_proj", &weight});
  ASSERT_TRUE(reason.has_value());
  EXPECT_THAT(*reason, ::testing::HasSubstr("model.layers.0.mlp.up_proj"));
  EXPECT_THAT(*reason, ::testing::HasSubstr("no CUDA kernel for mystery format"));
}

}  // namespace
