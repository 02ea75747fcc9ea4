// The affine scheme: hand-derived groups, the packed bit layout, error bounds,
// bad input, and bit-for-bit agreement with real MLX (oracle).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "quant/affine.hpp"
#include "quant/affine_weight.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

struct Quantized {
  std::vector<std::uint32_t> codes;
  std::vector<float> scales;
  std::vector<float> biases;
};

// Quantizes one f32 row with f32 parameters.
Quantized quantize_row(const std::vector<float>& row, int bits, int group_size) {
  const auto cols = static_cast<std::int64_t>(row.size());
  Quantized q;
  q.codes.resize(static_cast<std::size_t>(affine_words_per_row(cols, bits)));
  q.scales.resize(row.size() / static_cast<std::size_t>(group_size));
  q.biases.resize(q.scales.size());
  affine_quantize(row.data(), DType::F32, 1, cols, bits, group_size, DType::F32, "row",
                  q.codes.data(), q.scales.data(), q.biases.data());
  return q;
}

std::uint32_t code_at(const Quantized& q, std::int64_t index, int bits) {
  return unpack_code(q.codes.data(), index, bits);
}

TEST(AffineQuantize, AllZeroGroupHasScaleFloorAndZeroCodes) {
  const auto q = quantize_row(std::vector<float>(32, 0.0f), 4, 32);
  // s = max(0 / 15, 1e-7) negated (|min| > |max| is false); q0 = rint(0) = 0.
  EXPECT_EQ(q.scales[0], -1e-7f);
  EXPECT_EQ(q.biases[0], 0.0f);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(code_at(q, i, 4), 0u);
}

TEST(AffineQuantize, ConstantGroupIsExactThroughTheBias) {
  const auto q = quantize_row(std::vector<float>(64, 0.75f), 4, 64);
  // edge = 0.75, q0 = rint(0.75 / -1e-7) != 0, so bias = 0.75 and every code 0.
  EXPECT_EQ(q.biases[0], 0.75f);
  EXPECT_EQ(q.scales[0], 0.75f / std::rint(0.75f / -1e-7f));
  for (int i = 0; i < 64; ++i) EXPECT_EQ(code_at(q, i, 4), 0u);
}

TEST(AffineQuantize, AllNegativeGroupUsesMinAsEdge) {
  std::vector<float> row(32, -0.5f);
  row[3] = -1.0f;
  row[7] = -0.25f;
  const auto q = quantize_row(row, 4, 32);
  // |min| = 1 > |max| = 0.25: s = 0.75/15 = 0.05, q0 = rint(-1/0.05) = -20,
  // scale = -1/-20, bias = -1; -0.25 → 15, -0.5 → rint(0.5/0.05) = 10.
  EXPECT_EQ(q.scales[0], -1.0f / -20.0f);
  EXPECT_EQ(q.biases[0], -1.0f);
  EXPECT_EQ(code_at(q, 3, 4), 0u);
  EXPECT_EQ(code_at(q, 7, 4), 15u);
  EXPECT_EQ(code_at(q, 0, 4), 10u);
}

TEST(AffineQuantize, MaxEdgeGroupRoundsTiesToEven) {
  // min -1, max 2, bits 2: |max| wins, s = -(3/3) = -1, q0 = rint(2/-1) = -2,
  // scale = -1, bias = 2, q = rint(2 - w).
  std::vector<float> row(32, 0.0f);
  row[0] = 2.0f;
  row[1] = -1.0f;
  row[2] = 0.5f;  // rint(1.5) = 2
  row[3] = 1.5f;  // rint(0.5) = 0
  row[4] = 1.0f;  // 1
  const auto q = quantize_row(row, 2, 32);
  EXPECT_EQ(q.scales[0], -1.0f);
  EXPECT_EQ(q.biases[0], 2.0f);
  const std::uint32_t expected[] = {0, 3, 2, 0, 1};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(code_at(q, i, 2), expected[i]) << i;
  EXPECT_EQ(code_at(q, 5, 2), 2u);  // 0.0 → 2
}

TEST(AffineQuantize, MinEdgeGroupRoundsTiesToEven) {
  // min -2, max 1, bits 2: |min| wins, s = +1, q0 = -2, scale = 1, bias = -2,
  // q = rint(w + 2).
  std::vector<float> row(32, -2.0f);
  row[1] = 1.0f;   // 3
  row[2] = -0.5f;  // rint(1.5) = 2
  row[3] = 0.5f;   // rint(2.5) = 2
  row[4] = -1.5f;  // rint(0.5) = 0
  const auto q = quantize_row(row, 2, 32);
  EXPECT_EQ(q.scales[0], 1.0f);
  EXPECT_EQ(q.biases[0], -2.0f);
  const std::uint32_t expected[] = {0, 3, 2, 2, 0};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(code_at(q, i, 2), expected[i]) << i;
}

TEST(AffineQuantize, OneBitMapsCodesOntoMinAndMax) {
  // bits 1 (MLX's special case): scale = max - min, bias = min, q = rint((w - min) / scale).
  std::vector<float> row(32, 0.25f);
  for (int i = 0; i < 32; i += 2) row[i] = -0.5f;
  row[5] = -0.125f;  // (w - min) / scale = 0.5: tie, rounds to even 0
  row[7] = 0.0f;     // 0.6667 → 1
  const auto q = quantize_row(row, 1, 32);
  EXPECT_EQ(q.scales[0], 0.75f);
  EXPECT_EQ(q.biases[0], -0.5f);
  EXPECT_EQ(q.codes[0], 0xaaaaaaaau & ~(1u << 5));
  const auto zeros = quantize_row(std::vector<float>(32, 0.0f), 1, 32);
  EXPECT_EQ(zeros.scales[0], 1e-7f);
  EXPECT_EQ(zeros.codes[0], 0u);
}

TEST(AffineQuantize, GroupsAreIndependent) {
  std::vector<float> row(64, 0.0f);
  for (int i = 32; i < 64; ++i) row[i] = static_cast<float>(i - 32);  // 0..31
  const auto q = quantize_row(row, 5, 32);
  EXPECT_EQ(q.scales[0], -1e-7f);
  // Second group: max 31 wins, s = -1, q0 = -31, scale = -1, bias = 31: q = 31 - w.
  EXPECT_EQ(q.scales[1], -1.0f);
  EXPECT_EQ(q.biases[1], 31.0f);
  for (int i = 32; i < 64; ++i) EXPECT_EQ(code_at(q, i, 5), static_cast<std::uint32_t>(63 - i));
}

// Packs codes bit by bit into bytes: an independent statement of the layout.
std::vector<std::uint32_t> reference_layout(const std::vector<std::uint8_t>& codes, int bits) {
  std::vector<std::uint8_t> bytes((codes.size() * bits + 31) / 32 * 4, 0);
  for (std::size_t i = 0; i < codes.size(); ++i) {
    for (int k = 0; k < bits; ++k) {
      const std::size_t bit = i * bits + k;
      bytes[bit / 8] |= static_cast<std::uint8_t>(((codes[i] >> k) & 1u) << (bit % 8));
    }
  }
  std::vector<std::uint32_t> words(bytes.size() / 4);
  std::memcpy(words.data(), bytes.data(), bytes.size());  // little-endian host
  return words;
}

TEST(AffinePacking, KnownWords) {
  std::vector<std::uint32_t> words(8);
  const std::vector<std::uint8_t> nibbles = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  pack_codes(nibbles, 4, words.data());
  EXPECT_EQ(words[0], 0x76543210u);
  EXPECT_EQ(words[1], 0xfedcba98u);
  const std::vector<std::uint8_t> octets = {0x11, 0x22, 0x33, 0x44};
  pack_codes(octets, 8, words.data());
  EXPECT_EQ(words[0], 0x44332211u);
  // 3 bits: code 10 straddles words 0 and 1 (bits 30..32).
  std::vector<std::uint8_t> threes(32, 0);
  threes[0] = 5;
  threes[10] = 7;
  threes[11] = 1;
  pack_codes(threes, 3, words.data());
  EXPECT_EQ(words[0], 5u | (3u << 30));
  EXPECT_EQ(words[1], 1u | (1u << 1));
  EXPECT_EQ(words[2], 0u);
}

TEST(AffinePacking, EveryWidthMatchesTheBitStreamAndRoundTrips) {
  std::mt19937 rng(7);
  // 93 codes: the last word is partial (and garbage in it must be overwritten).
  for (const std::size_t count : {96u, 93u}) {
    for (int bits = 1; bits <= 8; ++bits) {
      std::vector<std::uint8_t> codes(count);
      for (auto& c : codes) c = static_cast<std::uint8_t>(rng() & ((1u << bits) - 1u));
      std::vector<std::uint32_t> words((count * static_cast<std::size_t>(bits) + 31) / 32,
                                       0xdeadbeefu);
      pack_codes(codes, bits, words.data());
      EXPECT_EQ(words, reference_layout(codes, bits)) << "bits " << bits << ", " << count;
      for (std::size_t i = 0; i < codes.size(); ++i) {
        ASSERT_EQ(unpack_code(words.data(), static_cast<std::int64_t>(i), bits), codes[i]);
      }
    }
  }
}

TEST(AffineQuantize, DequantizationErrorIsWithinHalfAStep) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  const std::int64_t out = 5;
  const std::int64_t in = 256;
  std::vector<float> w(static_cast<std::size_t>(out * in));
  for (auto& v : w) v = normal(rng);
  w[17] = 3.0f;  // an outlier
  for (int bits = 1; bits <= 8; ++bits) {
    for (int group : {32, 64, 128}) {
      for (DType dtype : {DType::F32, DType::BF16}) {
        std::vector<std::uint16_t> narrow(w.size());
        const void* data = w.data();
        if (dtype == DType::BF16) {
          for (std::size_t i = 0; i < w.size(); ++i) narrow[i] = f32_to_bf16(w[i]);
          data = narrow.data();
        }
        const auto weight = AffineWeight::quantize(data, dtype, out, in, bits, group, "w");
        std::vector<float> deq(w.size());
        weight->dequantize_rows(0, out, deq.data());
        const float n = static_cast<float>((1 << bits) - 1);
        for (std::int64_t o = 0; o < out; ++o) {
          for (std::int64_t i = 0; i < in; ++i) {
            const auto g = o * (in / group) + i / group;
            const float scale =
                std::abs(load_param(weight->scales().data(), weight->param_dtype(), g));
            const float bias =
                std::abs(load_param(weight->biases().data(), weight->param_dtype(), g));
            const float original =
                dtype == DType::BF16 ? bf16_to_f32(narrow[o * in + i]) : w[o * in + i];
            // The grid's far end can fall short of the range by up to about
            // one step (MLX snaps the edge to an exact code), so: one step,
            // plus (bf16 parameters) their rounding, 2^-8 relative on the bias
            // and on scale·q <= scale·n.
            float bound = scale * 1.0001f + 1e-6f;
            if (dtype == DType::BF16) bound += (bias + scale * n) * 0.0039063f;
            if (dtype == DType::F32) {
              // With exact parameters the result is the nearest grid point.
              const float s = load_param(weight->scales().data(), DType::F32, g);
              const float b = load_param(weight->biases().data(), DType::F32, g);
              float nearest = std::numeric_limits<float>::infinity();
              for (int c = 0; c < (1 << bits); ++c) {
                nearest = std::min(nearest, std::abs(s * static_cast<float>(c) + b - original));
              }
              ASSERT_LE(std::abs(deq[o * in + i] - original), nearest * 1.0001f + 1e-7f);
            }
            ASSERT_LE(std::abs(deq[o * in + i] - original), bound)
                << "bits " << bits << " group " << group << " at [" << o << ", " << i << "]";
          }
        }
      }
    }
  }
}

TEST(AffineQuantize, RefusesBadInputNamingTheCulprit) {
  std::vector<float> w(2 * 96, 0.5f);
  auto message = [&](auto&& call) {
    try {
      call();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] {
              AffineWeight::quantize(w.data(), DType::F32, 2, 96, 4, 48, "layer.q");
            }).find("group size 48"),
            std::string::npos);
  EXPECT_NE(message([&] {
              AffineWeight::quantize(w.data(), DType::F32, 2, 96, 4, 64, "layer.q");
            }).find("does not divide"),
            std::string::npos);
  EXPECT_NE(message([&] {
              AffineWeight::quantize(w.data(), DType::F32, 2, 96, 9, 32, "layer.q");
            }).find("layer.q"),
            std::string::npos);
  w[100] = std::numeric_limits<float>::quiet_NaN();
  const auto nan_message =
      message([&] { AffineWeight::quantize(w.data(), DType::F32, 2, 96, 4, 32, "layer.v"); });
  EXPECT_NE(nan_message.find("layer.v"), std::string::npos) << nan_message;
  EXPECT_NE(nan_message.find("[1, 4]"), std::string::npos) << nan_message;
  w[100] = -std::numeric_limits<float>::infinity();
  EXPECT_NE(message([&] {
              AffineWeight::quantize(w.data(), DType::F32, 2, 96, 4, 32, "x.inf");
            }).find("x.inf"),
            std::string::npos);
  const std::vector<std::uint32_t> codes(5);
  const std::vector<std::byte> params(12);
  EXPECT_NE(message([&] {
              AffineWeight::from_packed(2, 96, 4, 32, codes, DType::F16, params, params, "m.w");
            }).find("m.w"),
            std::string::npos);
}

TEST(AffineWeight, FromPackedKeepsTheArraysAndDescribesItself) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<std::uint16_t> w(16 * 128);
  for (auto& v : w) v = f32_to_f16(uniform(rng));
  const auto original = AffineWeight::quantize(w.data(), DType::F16, 16, 128, 6, 64, "w");
  EXPECT_EQ(original->param_dtype(), DType::F16);
  EXPECT_EQ(original->codes().size(), 16u * 128 * 6 / 32);
  EXPECT_EQ(original->storage_bytes(), 16u * 128 * 6 / 8 + 2 * 16 * 2 * 2);
  EXPECT_EQ(original->describe(), "affine b6 g64");
  const auto loaded = AffineWeight::from_packed(16, 128, 6, 64, original->codes(), DType::F16,
                                                original->scales(), original->biases(), "w");
  std::vector<float> a(16 * 128), b(16 * 128);
  original->dequantize_rows(0, 16, a.data());
  loaded->dequantize_rows(0, 16, b.data());
  EXPECT_EQ(a, b);
}

// --- Oracle: real MLX ------------------------------------------------------

// A minimal safetensors reader for the oracle's files (the test must not
// depend on the library's reader, which is another module).
class TensorFile {
 public:
  explicit TensorFile(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::uint64_t header_size = 0;
    in.read(reinterpret_cast<char*>(&header_size), 8);
    std::string header(header_size, '\0');
    in.read(header.data(), static_cast<std::streamsize>(header_size));
    header_ = nlohmann::json::parse(header);
    data_.assign(std::istreambuf_iterator<char>(in), {});
  }
  bool contains(const std::string& name) const { return header_.contains(name); }
  std::string dtype(const std::string& name) const { return header_.at(name).at("dtype"); }
  std::vector<std::int64_t> shape(const std::string& name) const {
    return header_.at(name).at("shape").get<std::vector<std::int64_t>>();
  }
  std::vector<std::byte> bytes(const std::string& name) const {
    const auto offsets = header_.at(name).at("data_offsets").get<std::vector<std::size_t>>();
    const auto* begin = reinterpret_cast<const std::byte*>(data_.data()) + offsets[0];
    return {begin, begin + (offsets[1] - offsets[0])};
  }
  std::vector<std::string> names() const {
    std::vector<std::string> result;
    for (const auto& item : header_.items()) {
      if (item.key() != "__metadata__") result.push_back(item.key());
    }
    return result;
  }

 private:
  nlohmann::json header_;
  std::string data_;
};

// Quantizes `w` as `dtype` and requires MLX's exact codes, scales, biases.
void expect_matches_mlx(const TensorFile& file, const std::string& weight_name,
                        const TensorFile& oracle, const std::string& key, int bits, int group) {
  const auto shape = file.shape(weight_name);
  const auto dtype = *parse_dtype(file.dtype(weight_name));
  const auto w = file.bytes(weight_name);
  const auto weight =
      AffineWeight::quantize(w.data(), dtype, shape[0], shape[1], bits, group, weight_name);
  const auto codes = oracle.bytes("q." + key);
  ASSERT_EQ(oracle.dtype("q." + key), "U32");
  ASSERT_EQ(codes.size(), weight->codes().size_bytes()) << key;
  ASSERT_EQ(oracle.dtype("s." + key), dtype_name(weight->param_dtype())) << key;
  EXPECT_TRUE(std::memcmp(codes.data(), weight->codes().data(), codes.size()) == 0)
      << "codes differ: " << key;
  const auto scales = oracle.bytes("s." + key);
  const auto biases = oracle.bytes("b." + key);
  ASSERT_EQ(scales.size(), weight->scales().size()) << key;
  EXPECT_TRUE(std::memcmp(scales.data(), weight->scales().data(), scales.size()) == 0)
      << "scales differ: " << key;
  EXPECT_TRUE(std::memcmp(biases.data(), weight->biases().data(), biases.size()) == 0)
      << "biases differ: " << key;
}

TEST(AffineOracle, BitForBitEqualToMlx) {
  if (!test::python_available()) GTEST_SKIP() << "oracle venv missing";
  test::TempDir dir;
  const auto result =
      test::run_oracle("mlx_quantize.py", {dir.path().string(), test::bundled_model().string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;

  const TensorFile random(dir / "random.safetensors");
  const TensorFile model(test::bundled_model() / "model.safetensors");
  int compared = 0;
  for (int bits : {1, 2, 3, 4, 5, 6, 8}) {
    for (int group : {32, 64, 128}) {
      const std::string suffix = ".b" + std::to_string(bits) + ".g" + std::to_string(group);
      for (const std::string dtype : {"f32", "f16", "bf16"}) {
        expect_matches_mlx(random, "w." + dtype, random, dtype + suffix, bits, group);
        ++compared;
      }
      const TensorFile oracle(dir / ("model" + suffix + ".safetensors"));
      for (const auto& name : model.names()) {
        if (model.shape(name).size() != 2) continue;
        SCOPED_TRACE(suffix);
        expect_matches_mlx(model, name, oracle, name, bits, group);
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 21 * 3 + 21 * 30);  // 3 dtypes and 30 model matrices per setting
}

}  // namespace
}  // namespace uq
