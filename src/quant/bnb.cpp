#include "quant/bnb.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace uq::bnb {
namespace {

// The FP4 codes (1 sign, 2 exponent, 1 mantissa bits, bias 2) before bnb
// divides them by their absmax 12, indexed by nibble.
constexpr std::array<float, 16> kFp4Raw{0.0f,  0.0625f,  8.0f,  12.0f,  4.0f,  6.0f,  2.0f,  3.0f,
                                        -0.0f, -0.0625f, -8.0f, -12.0f, -4.0f, -6.0f, -2.0f, -3.0f};

// The nibble stored for each rank in value order. bitsandbytes sorts the
// codes with torch.argsort, which puts +0 (nibble 0) before -0 (nibble 8): a
// scaled value in (0, midpoint] therefore gets nibble 8.
constexpr std::array<std::uint8_t, 16> kNf4Order{0, 1, 2,  3,  4,  5,  6,  7,
                                                 8, 9, 10, 11, 12, 13, 14, 15};
constexpr std::array<std::uint8_t, 16> kFp4Order{11, 10, 13, 12, 15, 14, 9, 0,
                                                 8,  1,  6,  7,  4,  5,  2, 3};

// torch.linspace(start, end, steps) in float32: the first half counted up from
// start, the second half down from end.
std::vector<float> linspace_f32(float start, float end, int steps) {
  const float step = (end - start) / static_cast<float>(steps - 1);
  std::vector<float> values(static_cast<std::size_t>(steps));
  for (int i = 0; i < steps; ++i) {
    values[static_cast<std::size_t>(i)] = i < steps / 2
                                              ? start + step * static_cast<float>(i)
                                              : end - step * static_cast<float>(steps - i - 1);
  }
  return values;
}

std::array<float, 256> make_dynamic_map() {
  // Signed, 7 exponent bits, 8 bits in all: for exponent i, 2^i fraction
  // means scaled by 10^(i-6), with both signs; then 0 and 1.
  std::vector<double> data;
  for (int i = 0; i < 7; ++i) {
    const auto bounds = linspace_f32(0.1f, 1.0f, (1 << i) + 1);
    const auto scale = static_cast<float>(std::pow(10.0, i - 6));
    std::vector<float> means;
    for (std::size_t k = 0; k + 1 < bounds.size(); ++k)
      means.push_back((bounds[k] + bounds[k + 1]) / 2.0f);
    for (const float mean : means) data.push_back(scale * mean);
    for (const float mean : means) data.push_back(-scale * mean);
  }
  data.push_back(0.0);
  data.push_back(1.0);
  std::sort(data.begin(), data.end());
  std::array<float, 256> map{};
  for (std::size_t i = 0; i < map.size(); ++i) map[i] = static_cast<float>(data[i]);
  return map;
}

}  // namespace

std::string_view four_bit_type_name(FourBitType type) {
  return type == FourBitType::NF4 ? "nf4" : "fp4";
}

const std::array<float, 16>& four_bit_code(FourBitType type) {
  static const std::array<float, 16> nf4{-1.0f,
                                         -0.6961928009986877f,
                                         -0.5250730514526367f,
                                         -0.39491748809814453f,
                                         -0.28444138169288635f,
                                         -0.18477343022823334f,
                                         -0.09105003625154495f,
                                         0.0f,
                                         0.07958029955625534f,
                                         0.16093020141124725f,
                                         0.24611230194568634f,
                                         0.33791524171829224f,
                                         0.44070982933044434f,
                                         0.5626170039176941f,
                                         0.7229568362236023f,
                                         1.0f};
  static const std::array<float, 16> fp4 = [] {
    std::array<float, 16> code{};
    for (std::size_t i = 0; i < code.size(); ++i) code[i] = kFp4Raw[i] / 12.0f;
    return code;
  }();
  return type == FourBitType::NF4 ? nf4 : fp4;
}

const std::array<float, 256>& dynamic_map() {
  static const std::array<float, 256> map = make_dynamic_map();
  return map;
}

void quantize_4bit(const float* data, std::int64_t n, int blocksize, FourBitType type,
                   std::uint8_t* packed, float* absmax) {
  const auto& code = four_bit_code(type);
  const auto& order = type == FourBitType::NF4 ? kNf4Order : kFp4Order;
  std::array<float, 15> midpoints{};
  for (std::size_t i = 0; i < midpoints.size(); ++i) {
    midpoints[i] = (code[order[i]] + code[order[i + 1]]) / 2.0f;
  }
  std::fill(packed, packed + (n + 1) / 2, std::uint8_t{0});
  for (std::int64_t begin = 0, block = 0; begin < n; begin += blocksize, ++block) {
    const std::int64_t end = std::min<std::int64_t>(begin + blocksize, n);
    float max_abs = 0.0f;
    for (std::int64_t i = begin; i < end; ++i) max_abs = std::max(max_abs, std::fabs(data[i]));
    absmax[block] = max_abs;
    const float inverse = 1.0f / std::max(max_abs, 1e-38f);
    for (std::int64_t i = begin; i < end; ++i) {
      const float scaled = std::clamp(data[i] * inverse, -1.0f, 1.0f);
      // Rank = number of midpoints strictly below: a tie goes to the lower code.
      std::size_t rank = 0;
      while (rank < midpoints.size() && midpoints[rank] < scaled) ++rank;
      const std::uint8_t nibble = order[rank];
      packed[i / 2] |= static_cast<std::uint8_t>(i % 2 == 0 ? nibble << 4 : nibble);
    }
  }
}

NestedAbsmax quantize_nested(std::span<const float> absmax, int nested_blocksize) {
  NestedAbsmax nested;
  nested.blocksize = nested_blocksize;
  // torch's float32 mean: a float32 sum (pairwise in torch; the order only
  // matters in the last bit for the block counts of real layers) over n.
  double sum = 0.0;
  for (const float value : absmax) sum += value;
  nested.offset = static_cast<float>(sum / static_cast<double>(absmax.size()));
  const std::array<float, 256>& code = dynamic_map();
  const auto n = static_cast<std::int64_t>(absmax.size());
  nested.codes.resize(absmax.size());
  for (std::int64_t begin = 0; begin < n; begin += nested_blocksize) {
    const std::int64_t end = std::min<std::int64_t>(begin + nested_blocksize, n);
    float max_abs = 0.0f;
    for (std::int64_t i = begin; i < end; ++i) {
      max_abs = std::max(max_abs, std::fabs(absmax[static_cast<std::size_t>(i)] - nested.offset));
    }
    nested.absmax.push_back(max_abs);
    for (std::int64_t i = begin; i < end; ++i) {
      const float normed = (absmax[static_cast<std::size_t>(i)] - nested.offset) / max_abs;
      // The last code not above `normed`, then the right neighbour if strictly closer.
      auto index = static_cast<std::size_t>(std::upper_bound(code.begin(), code.end(), normed) -
                                            code.begin());
      index = index == 0 ? 0 : index - 1;
      if (index < 255 && std::fabs(normed - code[index + 1]) < std::fabs(normed - code[index])) {
        ++index;
      }
      nested.codes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(index);
    }
  }
  return nested;
}

std::vector<float> dequantize_nested(std::span<const std::uint8_t> codes,
                                     std::span<const float> nested_absmax,
                                     std::span<const float> code, float offset, int blocksize) {
  std::vector<float> absmax(codes.size());
  for (std::size_t i = 0; i < codes.size(); ++i) {
    absmax[i] = code[codes[i]] * nested_absmax[i / static_cast<std::size_t>(blocksize)] + offset;
  }
  return absmax;
}

void quantize_int8_rows(const float* data, std::int64_t rows, std::int64_t cols, std::int8_t* q,
                        float* scb) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = data + r * cols;
    float max_abs = 0.0f;
    for (std::int64_t c = 0; c < cols; ++c) max_abs = std::max(max_abs, std::fabs(row[c]));
    scb[r] = max_abs;
    // torch evaluates 127.0 / t as reciprocal(t) * 127.0.
    const float factor = (1.0f / max_abs) * 127.0f;
    for (std::int64_t c = 0; c < cols; ++c) {
      // A zero row gives 0 * inf = NaN in bitsandbytes too; store 0 instead.
      // A subnormal max_abs also overflows the factor: divide there.
      const float scaled = max_abs == 0.0f         ? 0.0f
                           : std::isfinite(factor) ? row[c] * factor
                                                   : row[c] / max_abs * 127.0f;
      q[r * cols + c] = static_cast<std::int8_t>(std::nearbyint(scaled));
    }
  }
}

}  // namespace uq::bnb
