// The GGUF reader and writer: a round trip through GgufWriter, and hostile
// files (truncated, lying counts, huge dimensions, offsets out of range,
// unknown types) each failing with its exact error line.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "io/formats/gguf_reader.hpp"
#include "io/formats/gguf_writer.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

// Little-endian GGUF bytes, built field by field.
struct Bytes {
  std::vector<std::byte> data;
  template <class T>
  Bytes& put(T value) {
    const auto* p = reinterpret_cast<const std::byte*>(&value);
    data.insert(data.end(), p, p + sizeof(T));
    return *this;
  }
  Bytes& text(const std::string& s) {
    put<std::uint64_t>(s.size());
    for (const char c : s) data.push_back(static_cast<std::byte>(c));
    return *this;
  }
  Bytes& header(std::uint64_t tensors, std::uint64_t kvs, std::uint32_t version = 3) {
    for (const char c : std::string("GGUF")) data.push_back(static_cast<std::byte>(c));
    return put(version).put(tensors).put(kvs);
  }
  Bytes& tensor(const std::string& name, std::vector<std::uint64_t> dims, std::uint32_t type,
                std::uint64_t offset) {
    text(name).put(static_cast<std::uint32_t>(dims.size()));
    for (const auto d : dims) put(d);
    return put(type).put(offset);
  }
  Bytes& pad_to(std::size_t alignment) {
    while (data.size() % alignment != 0) data.push_back(std::byte{0});
    return *this;
  }
  Bytes& zeros(std::size_t count) {
    data.insert(data.end(), count, std::byte{0});
    return *this;
  }
};

std::string parse_error(const std::vector<std::byte>& bytes) {
  try {
    (void)GgufFile::parse(bytes, "bad.gguf");
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(GgufReader, WriterRoundTrip) {
  test::TempDir dir;
  const auto path = dir / "small.gguf";
  {
    GgufWriter writer(path);
    writer.add_string("general.architecture", "llama");
    writer.add_u32("llama.block_count", 2);
    writer.add_f32("llama.rope.freq_base", 500000.0f);
    writer.add_bool("flag", true);
    writer.add_strings("names", {"a", "bc", ""});
    writer.add_i32s("ids", {-1, 7});
    writer.declare("vector", {5}, GgmlType::F32);
    writer.declare("matrix", {32, 3}, GgmlType::Q8_0);
    const std::vector<float> vector{1, 2, 3, 4, 5};
    writer.write("vector", std::as_bytes(std::span<const float>(vector)));
    std::vector<std::byte> matrix(3 * 34, std::byte{7});
    writer.write("matrix", matrix);
    writer.commit();
  }
  ASSERT_TRUE(is_gguf_file(path));
  const auto file = GgufFile::open(path);
  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(file->alignment(), 32u);
  EXPECT_EQ(file->string("general.architecture"), "llama");
  EXPECT_EQ(file->integer("llama.block_count"), 2);
  EXPECT_EQ(file->number("llama.rope.freq_base"), 500000.0);
  EXPECT_EQ(file->integer("flag"), 1);
  EXPECT_EQ(file->string_array("names"), (std::vector<std::string>{"a", "bc", ""}));
  EXPECT_EQ(file->integer_array("ids"), (std::vector<std::int64_t>{-1, 7}));
  ASSERT_EQ(file->tensors().size(), 2u);
  const auto& vector = file->tensor("vector");
  EXPECT_EQ(vector.offset, 0u);
  EXPECT_EQ(vector.nbytes, 20u);
  float first = 0;
  std::memcpy(&first, file->tensor_data(vector).data(), sizeof first);
  EXPECT_EQ(first, 1.0f);
  const auto& matrix = file->tensor("matrix");
  EXPECT_EQ(matrix.offset, 32u);  // aligned after the 20-byte vector
  EXPECT_EQ(matrix.dims, (std::vector<std::int64_t>{32, 3}));
  EXPECT_EQ(matrix.rows(), 3);
  EXPECT_EQ(matrix.nbytes, 102u);
  EXPECT_EQ(std::to_integer<int>(file->tensor_data(matrix)[101]), 7);
  try {
    (void)file->string("llama.block_count");
    ADD_FAILURE();
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()),
              path.string() + ": metadata 'llama.block_count' is u32, expected a string");
  }
}

TEST(GgufReader, WriterRefusesWrongSizesAndOrder) {
  test::TempDir dir;
  GgufWriter writer(dir / "x.gguf");
  writer.declare("a", {32}, GgmlType::Q4_0);
  writer.declare("b", {4}, GgmlType::F32);
  EXPECT_THROW(writer.write("b", std::vector<std::byte>(16)), Error);
  EXPECT_THROW(writer.write("a", std::vector<std::byte>(17)), Error);
  EXPECT_THROW(writer.commit(), Error);
  EXPECT_FALSE(std::filesystem::exists(dir / "x.gguf"));
}

TEST(GgufReader, HostileFilesFailWithExactErrors) {
  EXPECT_EQ(parse_error(Bytes{}.put<std::uint32_t>(0x46554747u).data),
            "bad.gguf: truncated: the version needs 4 bytes at offset 4 but only 0 remain");
  EXPECT_EQ(parse_error(Bytes{}.text("nope").data),
            "bad.gguf: not a GGUF file (no \"GGUF\" magic)");
  EXPECT_EQ(parse_error(Bytes{}.header(0, 0, 1).data),
            "bad.gguf: GGUF version 1 is not supported (2 and 3 are)");
  // Big-endian files read as a huge version.
  EXPECT_EQ(parse_error(Bytes{}.header(0, 0, 0x03000000u).data),
            "bad.gguf: GGUF version 50331648 is not supported (2 and 3 are)");
  // Lying counts: far more entries than bytes.
  EXPECT_EQ(parse_error(Bytes{}.header(0, 1ull << 60).data),
            "bad.gguf: metadata count 1152921504606846976 cannot fit in the 24-byte file");
  EXPECT_EQ(parse_error(Bytes{}.header(1ull << 40, 0).data),
            "bad.gguf: tensor count 1099511627776 cannot fit in the 24-byte file");
  // A string longer than the file.
  EXPECT_EQ(parse_error(Bytes{}.header(0, 1).put<std::uint64_t>(1ull << 50).zeros(8).data),
            "bad.gguf: metadata key 0: string length 1125899906842624 exceeds the 8 bytes left "
            "in the file");
  // An array claiming more elements than bytes remain.
  EXPECT_EQ(parse_error(Bytes{}
                            .header(0, 1)
                            .text("tokens")
                            .put<std::uint32_t>(9)
                            .put<std::uint32_t>(8)
                            .put<std::uint64_t>(1000000)
                            .zeros(16)
                            .data),
            "bad.gguf: metadata 'tokens': array of 1000000 string elements cannot fit in the 16 "
            "bytes left in the file");
  // 17M one-byte elements fit in the file but exceed the element cap.
  EXPECT_EQ(parse_error(Bytes{}
                            .header(0, 1)
                            .text("bytes")
                            .put<std::uint32_t>(9)
                            .put<std::uint32_t>(0)
                            .put<std::uint64_t>(17000000)
                            .zeros(17000000)
                            .data),
            "bad.gguf: metadata 'bytes': metadata arrays hold more than 16777216 elements in all");
  EXPECT_EQ(parse_error(Bytes{}.header(0, 1).text("k").put<std::uint32_t>(13).zeros(8).data),
            "bad.gguf: metadata 'k': unknown value type 13");
  EXPECT_EQ(
      parse_error(Bytes{}.header(0, 1).text("k").put<std::uint32_t>(4).put<std::uint16_t>(1).data),
      "bad.gguf: truncated: metadata 'k' needs 4 bytes at offset 37 but only 2 remain");
  // Tensor infos: unknown type, too many or huge dims, bad rows, offsets.
  EXPECT_EQ(parse_error(Bytes{}.header(1, 0).tensor("t", {32}, 99, 0).pad_to(32).zeros(64).data),
            "bad.gguf: tensor 't': unsupported ggml type code 99");
  EXPECT_EQ(parse_error(Bytes{}.header(1, 0).tensor("t", {1, 1, 1, 1, 1}, 0, 0).zeros(64).data),
            "bad.gguf: tensor 't': 5 dimensions (at most 4)");
  EXPECT_EQ(parse_error(Bytes{}
                            .header(1, 0)
                            .tensor("t", {1ull << 32, 1ull << 32}, 0, 0)
                            .pad_to(32)
                            .zeros(64)
                            .data),
            "bad.gguf: tensor 't': dimension 4294967296 makes the element count overflow");
  EXPECT_EQ(
      parse_error(Bytes{}.header(1, 0).tensor("t", {1ull << 40}, 0, 0).pad_to(32).zeros(64).data),
      "bad.gguf: tensor 't': bytes [0, 4398046511104) of the data section run past its end "
      "(64 bytes)");
  EXPECT_EQ(parse_error(Bytes{}.header(1, 0).tensor("t", {16}, 2, 0).pad_to(32).zeros(64).data),
            "bad.gguf: tensor 't': row length 16 is not a multiple of the Q4_0 block size 32");
  EXPECT_EQ(parse_error(Bytes{}.header(1, 0).tensor("t", {4}, 0, 64).pad_to(32).zeros(64).data),
            "bad.gguf: tensor 't': bytes [64, 80) of the data section run past its end (64 bytes)");
  EXPECT_EQ(parse_error(Bytes{}.header(1, 0).tensor("t", {4}, 0, 3).pad_to(32).zeros(64).data),
            "bad.gguf: tensor 't': offset 3 is not a multiple of the alignment 32");
  EXPECT_EQ(parse_error(Bytes{}
                            .header(2, 0)
                            .tensor("t", {4}, 0, 0)
                            .tensor("t", {4}, 0, 32)
                            .pad_to(32)
                            .zeros(64)
                            .data),
            "bad.gguf: tensor 't' appears twice");
  // Header ends, data section missing entirely.
  EXPECT_EQ(parse_error(Bytes{}.header(1, 0).tensor("t", {4}, 0, 0).data),
            "bad.gguf: truncated: the data section starts at 64 past the end of the 57-byte file");
  EXPECT_EQ(parse_error(Bytes{}
                            .header(0, 1)
                            .text("general.alignment")
                            .put<std::uint32_t>(4)
                            .put<std::uint32_t>(3)
                            .data),
            "bad.gguf: metadata 'general.alignment' must be a u32 power of two");
}

// Every prefix of a valid file that cuts into it fails cleanly with uq::Error.
TEST(GgufReader, EveryTruncationFails) {
  test::TempDir dir;
  const auto path = dir / "t.gguf";
  {
    GgufWriter writer(path);
    writer.add_strings("names", {"x", "yz"});
    writer.declare("w", {32, 2}, GgmlType::Q4_0);
    writer.write("w", std::vector<std::byte>(36));
    writer.commit();
  }
  const std::string whole = test::read_text(path);
  std::vector<std::byte> bytes(whole.size());
  std::memcpy(bytes.data(), whole.data(), whole.size());
  // The last tensor's 36 bytes end 28 bytes before the file does: the writer
  // pads every tensor to the alignment, and that final padding is optional.
  const std::size_t data_end = bytes.size() - 28;
  for (std::size_t size = 0; size < data_end; ++size) {
    const std::vector<std::byte> prefix(bytes.begin(), bytes.begin() + static_cast<long>(size));
    EXPECT_NE(parse_error(prefix), "(no error)") << size;
  }
  EXPECT_EQ(parse_error({bytes.begin(), bytes.begin() + static_cast<long>(data_end)}),
            "(no error)");
}

}  // namespace
}  // namespace uq
