// check_tensors_finite (uq --check-tensors): the first NaN or infinity of a safetensors
// checkpoint or a GGUF file, named by file, tensor and element, in file order; integer tensors
// skipped; GGUF block formats decoded (a NaN block scale poisons its 32 elements).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/thread_pool.hpp"
#include "io/formats/gguf_writer.hpp"
#include "io/safetensors.hpp"
#include "io/tensor_check.hpp"
#include "quant/ggml_blocks.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

template <typename T>
std::span<const std::byte> bytes_of(const std::vector<T>& values) {
  return std::as_bytes(std::span<const T>(values));
}

std::string error_of(const std::filesystem::path& model) {
  try {
    check_tensors_finite(model);
  } catch (const Error& error) {
    return error.what();
  }
  return "no error";
}

constexpr float kInf = std::numeric_limits<float>::infinity();

// A tensor of 140,000 elements is three chunks of the scan ([0, 65536), [65536, 131072), the
// rest): bad values in the first and last chunk must report the first, whichever thread finds
// which first.
void write_checkpoint(const std::filesystem::path& path, float bad_a, float bad_b) {
  SafetensorsWriter writer(path);
  writer.add("small", DType::F32, {3}, bytes_of(std::vector<float>{1.0f, -2.0f, 3.0f}));
  // 0x7fc00000 is a NaN's bit pattern, but in an integer tensor it is just a number.
  writer.add("codes", DType::U32, {2}, bytes_of(std::vector<std::uint32_t>{0x7fc00000u, 1u}));
  std::vector<std::uint16_t> big(140000, f32_to_bf16(0.5f));
  big[131072] = f32_to_bf16(bad_b);
  big[60000] = f32_to_bf16(bad_a);
  writer.add("big", DType::BF16, {2, 70000}, bytes_of(big));
  writer.add("half", DType::F16, {2},
             bytes_of(std::vector<std::uint16_t>{f32_to_f16(1.0f), f32_to_f16(-kInf)}));
  writer.commit();
}

TEST(TensorCheck, FirstNonFiniteValueOfACheckpointIsNamed) {
  test::TempDir dir;
  const auto path = dir / "model.safetensors";
  const int before = num_threads();
  for (const int threads : {1, 4}) {
    set_num_threads(threads);
    write_checkpoint(path, kInf, std::nanf(""));
    EXPECT_EQ(error_of(path), path.string() + ": tensor 'big' holds inf at element 60000");
    write_checkpoint(path, 0.25f, std::nanf(""));
    EXPECT_EQ(error_of(path), path.string() + ": tensor 'big' holds nan at element 131072");
    write_checkpoint(path, 0.25f, 0.75f);  // only the F16 tensor's -inf is left
    EXPECT_EQ(error_of(path), path.string() + ": tensor 'half' holds -inf at element 1");
  }
  set_num_threads(before);
}

TEST(TensorCheck, FiniteCheckpointCountsItsFloatValues) {
  test::TempDir dir;
  SafetensorsWriter writer(dir / "model.safetensors");
  writer.add("w", DType::F32, {2, 2}, bytes_of(std::vector<float>{1, 2, 3, 4}));
  writer.add("ids", DType::I32, {3}, bytes_of(std::vector<std::int32_t>{-1, 0, 1}));
  writer.add("scales", DType::F16, {2}, bytes_of(std::vector<std::uint16_t>{0x3c00, 0x4000}));
  writer.commit();
  const TensorCheckSummary summary = check_tensors_finite(dir.path());  // the directory
  EXPECT_EQ(summary.tensors, 2);
  EXPECT_EQ(summary.values, 6);
}

constexpr std::int64_t kGgufRows = 2100;  // of 64: 134,400 elements, three chunks of rows

// An F32 tensor "norm" {1, 2} and the Q8_0 tensor "w" of kGgufRows rows of 64 holding `q8`.
void write_gguf(const std::filesystem::path& path, const std::vector<std::byte>& q8) {
  GgufWriter writer(path);
  writer.declare("norm", {2}, GgmlType::F32);
  writer.declare("w", {64, kGgufRows}, GgmlType::Q8_0);
  writer.write("norm", bytes_of(std::vector<float>{1.0f, 2.0f}));
  writer.write("w", q8);
  writer.commit();
}

TEST(TensorCheck, GgufBlockScaleThatIsNaNPoisonsItsBlock) {
  test::TempDir dir;
  const auto path = dir / "model.gguf";
  const std::size_t row_bytes = ggml_row_bytes(GgmlType::Q8_0, 64);
  std::vector<float> values(kGgufRows * 64);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = std::sin(static_cast<float>(i));
  std::vector<std::byte> q8(kGgufRows * row_bytes);
  for (std::int64_t r = 0; r < kGgufRows; ++r) {
    ggml_quantize_row(GgmlType::Q8_0, values.data() + r * 64, 64, q8.data() + r * row_bytes);
  }
  write_gguf(path, q8);
  const TensorCheckSummary summary = check_tensors_finite(path);
  EXPECT_EQ(summary.tensors, 2);
  EXPECT_EQ(summary.values, 2 + kGgufRows * 64);

  // The second block (elements 32-63) of rows 1500 (second chunk) and 2050 (third): its f16
  // scale, the block's first 2 bytes, NaN (0x7e00) or inf (0x7c00).
  const auto poison = [&](std::int64_t row, std::uint8_t high) {
    const std::size_t block = row * row_bytes + ggml_type_size(GgmlType::Q8_0);
    q8[block] = std::byte{0x00};
    q8[block + 1] = std::byte{high};
  };
  poison(2050, 0x7c);
  poison(1500, 0x7e);
  const int before = num_threads();
  for (const int threads : {1, 4}) {
    set_num_threads(threads);
    write_gguf(path, q8);
    EXPECT_EQ(error_of(path), path.string() + ": tensor 'w' holds nan at element " +
                                  std::to_string(1500 * 64 + 32));
  }
  set_num_threads(before);
}

// The model reads F64 as float32, so a finite double beyond float's range would load as inf.
TEST(TensorCheck, F64BeyondFloatRangeIsReported) {
  test::TempDir dir;
  const auto path = dir / "model.safetensors";
  SafetensorsWriter writer(path);
  writer.add("d", DType::F64, {3}, bytes_of(std::vector<double>{1.0, 3.0e38, -1.0e300}));
  writer.commit();
  EXPECT_EQ(error_of(path),
            path.string() + ": tensor 'd' holds -1e+300 (beyond float32) at element 2");
  std::vector<float> converted(3);
  const std::vector<double> stored{1.0, 3.0e38, -1.0e300};
  convert_to_f32(DType::F64, stored.data(), 3, converted.data());
  EXPECT_EQ(converted, (std::vector<float>{1.0f, 3.0e38f, -kInf}));
}

TEST(TensorCheck, MissingModelIsAnError) {
  test::TempDir dir;
  EXPECT_THROW(check_tensors_finite(dir / "absent"), Error);
}

}  // namespace
}  // namespace uq
