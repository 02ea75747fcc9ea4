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

// Two float tensors of 140,000 elements: more than one chunk, so the parallel scan must still
// report the first bad element, not the first one a thread happened to find.
void write_checkpoint(const std::filesystem::path& path, float bad_a, float bad_b) {
  SafetensorsWriter writer(path);
  writer.add("small", DType::F32, {3}, bytes_of(std::vector<float>{1.0f, -2.0f, 3.0f}));
  // 0x7fc00000 is a NaN's bit pattern, but in an integer tensor it is just a number.
  writer.add("codes", DType::U32, {2}, bytes_of(std::vector<std::uint32_t>{0x7fc00000u, 1u}));
  std::vector<std::uint16_t> big(140000, f32_to_bf16(0.5f));
  big[130000] = f32_to_bf16(bad_b);
  big[100000] = f32_to_bf16(bad_a);
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
    EXPECT_EQ(error_of(path), path.string() + ": tensor 'big' holds inf at element 100000");
    write_checkpoint(path, 0.25f, std::nanf(""));
    EXPECT_EQ(error_of(path), path.string() + ": tensor 'big' holds nan at element 130000");
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

// An F32 tensor "norm" {1, 2} and the Q8_0 tensor "w" of 3 rows of 64 holding `q8`.
void write_gguf(const std::filesystem::path& path, const std::vector<std::byte>& q8) {
  GgufWriter writer(path);
  writer.declare("norm", {2}, GgmlType::F32);
  writer.declare("w", {64, 3}, GgmlType::Q8_0);
  writer.write("norm", bytes_of(std::vector<float>{1.0f, 2.0f}));
  writer.write("w", q8);
  writer.commit();
}

TEST(TensorCheck, GgufBlockScaleThatIsNaNPoisonsItsBlock) {
  test::TempDir dir;
  const auto path = dir / "model.gguf";
  std::vector<float> values(3 * 64);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = std::sin(static_cast<float>(i));
  std::vector<std::byte> q8(3 * ggml_row_bytes(GgmlType::Q8_0, 64));
  for (int r = 0; r < 3; ++r) {
    ggml_quantize_row(GgmlType::Q8_0, values.data() + r * 64, 64,
                      q8.data() + r * ggml_row_bytes(GgmlType::Q8_0, 64));
  }
  write_gguf(path, q8);
  const TensorCheckSummary summary = check_tensors_finite(path);
  EXPECT_EQ(summary.tensors, 2);
  EXPECT_EQ(summary.values, 2 + 3 * 64);

  // Row 2's second block (elements 160-191): its f16 scale (the block's first 2 bytes) NaN.
  const std::size_t block = 2 * ggml_row_bytes(GgmlType::Q8_0, 64) + ggml_type_size(GgmlType::Q8_0);
  q8[block] = std::byte{0x00};
  q8[block + 1] = std::byte{0x7e};
  write_gguf(path, q8);
  EXPECT_EQ(error_of(path), path.string() + ": tensor 'w' holds nan at element 160");
}

TEST(TensorCheck, MissingModelIsAnError) {
  test::TempDir dir;
  EXPECT_THROW(check_tensors_finite(dir / "absent"), Error);
}

}  // namespace
}  // namespace uq
