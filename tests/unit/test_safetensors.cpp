#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

template <class T>
std::vector<std::byte> bytes_of(const std::vector<T>& values) {
  std::vector<std::byte> bytes(values.size() * sizeof(T));
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

std::vector<std::byte> bytes_of(const TensorView& view) {
  return std::vector<std::byte>(view.data, view.data + view.nbytes);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A hand-made file: 8-byte little-endian header length (the real one unless
// `declared_length` is given), the header text, then `data_bytes` bytes.
void write_raw(const fs::path& path, std::string_view header, std::size_t data_bytes,
               std::optional<std::uint64_t> declared_length = std::nullopt) {
  const std::uint64_t length = declared_length.value_or(header.size());
  std::ofstream out(path, std::ios::binary);
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((length >> (8 * i)) & 0xff));
  out << header << std::string(data_bytes, '\x5a');
}

// Runs `body` and expects a uq::Error whose message contains every piece.
template <class Body>
void expect_error(Body&& body, std::initializer_list<std::string> pieces) {
  try {
    body();
    ADD_FAILURE() << "no error thrown; expected one mentioning '" << *pieces.begin() << "'";
  } catch (const Error& error) {
    const std::string message = error.what();
    for (const auto& piece : pieces) {
      EXPECT_NE(message.find(piece), std::string::npos)
          << "'" << message << "' lacks '" << piece << "'";
    }
  }
}

std::vector<std::string> entries_of(const fs::path& directory) {
  std::vector<std::string> names;
  for (const auto& item : fs::directory_iterator(directory)) {
    names.push_back(item.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

template <class T>
std::vector<double> widen(const TensorView& view) {
  std::vector<double> values(view.nbytes / sizeof(T));
  for (std::size_t i = 0; i < values.size(); ++i) {
    T value;
    std::memcpy(&value, view.data + i * sizeof(T), sizeof(T));
    values[i] = static_cast<double>(value);
  }
  return values;
}

// Every stored value as a double (exact for every dtype used in these tests).
std::vector<double> values_of(const TensorView& view) {
  switch (view.dtype) {
    case DType::F64:
      return widen<double>(view);
    case DType::I64:
      return widen<std::int64_t>(view);
    case DType::I32:
      return widen<std::int32_t>(view);
    case DType::I16:
      return widen<std::int16_t>(view);
    case DType::I8:
      return widen<std::int8_t>(view);
    case DType::U8:
    case DType::BOOL:
      return widen<std::uint8_t>(view);
    case DType::U32:
      return widen<std::uint32_t>(view);
    default: {
      const auto floats = view.to_f32();
      return std::vector<double>(floats.begin(), floats.end());
    }
  }
}

struct SampleTensor {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> bytes;
};

// One tensor per dtype (plus a scalar and an empty one) with patterned bytes.
std::vector<SampleTensor> sample_tensors() {
  const std::vector<std::pair<DType, std::vector<std::int64_t>>> specs = {
      {DType::F64, {2, 3}}, {DType::F32, {4}},    {DType::F16, {2, 2, 2}}, {DType::BF16, {3, 1}},
      {DType::I64, {2}},    {DType::I32, {5}},    {DType::I16, {1, 3}},    {DType::I8, {7}},
      {DType::U8, {3, 3}},  {DType::U32, {2}},    {DType::BOOL, {5}},      {DType::F8_E4M3, {6}},
      {DType::F8_E5M2, {}}, {DType::F32, {0, 4}},
  };
  std::vector<SampleTensor> tensors;
  for (std::size_t index = 0; index < specs.size(); ++index) {
    const auto& [dtype, shape] = specs[index];
    std::size_t count = 1;
    for (const auto dim : shape) count *= static_cast<std::size_t>(dim);
    std::vector<std::byte> bytes(count * dtype_size(dtype));
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      bytes[i] = static_cast<std::byte>(dtype == DType::BOOL ? (i + index) % 2
                                                             : (i * 131 + index * 17) & 0x7f);
    }
    // (Appending rather than operator+ sidesteps a false GCC 12 -Wrestrict.)
    std::string name = "t";
    name.append(std::to_string(index)).append(".").append(dtype_name(dtype));
    tensors.push_back({std::move(name), dtype, shape, std::move(bytes)});
  }
  return tensors;
}

TEST(Safetensors, RoundTripsEveryDtypeWithMetadata) {
  TempDir dir;
  const auto path = dir / "all.safetensors";
  const auto tensors = sample_tensors();
  const std::map<std::string, std::string> metadata{{"format", "pt"}, {"note", "é ünïcode"}};
  {
    SafetensorsWriter writer(path, metadata);
    for (const auto& tensor : tensors)
      writer.add(tensor.name, tensor.dtype, tensor.shape, tensor.bytes);
    writer.commit();
  }
  EXPECT_EQ(entries_of(dir.path()), std::vector<std::string>{"all.safetensors"});

  const auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->metadata(), metadata);
  ASSERT_EQ(file->names().size(), tensors.size());
  std::size_t total = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& expected = tensors[i];
    EXPECT_EQ(file->names()[i], expected.name);  // offset order = declaration order
    const auto view = file->tensor(expected.name);
    EXPECT_EQ(view.name, expected.name);
    EXPECT_EQ(view.dtype, expected.dtype);
    EXPECT_EQ(view.shape, expected.shape);
    EXPECT_EQ(bytes_of(view), expected.bytes) << expected.name;
    total += expected.bytes.size();
  }
  EXPECT_EQ(file->data_bytes(), total);
  EXPECT_TRUE(file->contains("t1.F32"));
  EXPECT_FALSE(file->contains("nope"));
  EXPECT_EQ(file->tensor("t12.F8_E5M2").numel(), 1);
  EXPECT_EQ(file->tensor("t13.F32").numel(), 0);

  const std::vector<float> f32 = file->tensor("t1.F32").to_f32();
  std::vector<float> expected_f32(4);
  std::memcpy(expected_f32.data(), tensors[1].bytes.data(), 16);
  EXPECT_EQ(f32, expected_f32);
  expect_error([&] { file->tensor("t5.I32").to_f32(); }, {"t5.I32", "I32", "not a float"});
  expect_error([&] { file->tensor("missing.weight"); }, {path.string(), "'missing.weight'"});
  const TensorView hand_made{"hand", DType::F32, {2}, nullptr, 4};
  expect_error([&] { hand_made.to_f32(); }, {"'hand'", "4 bytes do not match F32 [2]"});
}

TEST(Safetensors, HeaderIsOrderedPaddedAndContiguous) {
  TempDir dir;
  const auto path = dir / "layout.safetensors";
  {
    SafetensorsWriter writer(path, {{"format", "mlx"}});
    writer.add("z", DType::U8, {3}, bytes_of(std::vector<std::uint8_t>{1, 2, 3}));
    writer.add("a", DType::F32, {1}, bytes_of(std::vector<float>{1.5f}));
    writer.commit();
  }
  const std::string raw = read_text(path);
  std::uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(raw[i]);
  EXPECT_EQ(length % 8, 0u);
  EXPECT_EQ(raw.size(), 8 + length + 7);
  const std::string header = raw.substr(8, length);
  const std::string json =
      R"({"__metadata__":{"format":"mlx"},"z":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},)"
      R"("a":{"dtype":"F32","shape":[1],"data_offsets":[3,7]}})";
  EXPECT_EQ(header, json + std::string(length - json.size(), ' '));
  EXPECT_LT(length - json.size(), 8u);
}

TEST(Safetensors, StreamingWriterAcceptsAnyChunking) {
  TempDir dir;
  const auto path = dir / "stream.safetensors";
  // Larger than the writer's buffer, so both buffered and direct writes happen.
  std::vector<std::byte> big(3 * 1024 * 1024 + 5);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::byte>((i * 7919) >> 3);
  const auto small = bytes_of(std::vector<std::int32_t>{-1, 2, -3});
  const auto added = bytes_of(std::vector<std::uint16_t>{0x3f80, 0xc000});
  {
    SafetensorsWriter writer(path);
    writer.declare("big", DType::U8, {static_cast<std::int64_t>(big.size())});
    writer.add("added.between", DType::BF16, {2}, added);
    writer.declare("nothing", DType::F16, {0});
    writer.declare("small", DType::I32, {3});
    const std::span<const std::byte> all(big);
    std::size_t offset = 0;
    for (const std::size_t size :
         {std::size_t{1}, std::size_t{7}, std::size_t{100000}, std::size_t{2 * 1024 * 1024}}) {
      writer.write("big", all.subspan(offset, size));
      offset += size;
    }
    writer.write("big", all.subspan(offset));
    writer.write("small", std::span(small).first(5));
    writer.write("small", std::span(small).subspan(5));
    writer.commit();
  }
  const auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->names(), (std::vector<std::string>{"big", "added.between", "nothing", "small"}));
  EXPECT_EQ(bytes_of(file->tensor("big")), big);
  EXPECT_EQ(bytes_of(file->tensor("small")), small);
  EXPECT_EQ(file->tensor("added.between").to_f32(), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(file->tensor("nothing").nbytes, 0u);
}

TEST(Safetensors, WriterRefusesWrongByteCounts) {
  TempDir dir;
  const auto path = dir / "w.safetensors";
  const std::vector<std::byte> four(4), eight(8);
  {
    SafetensorsWriter writer(path);
    writer.declare("a", DType::F32, {1});
    writer.declare("b", DType::F32, {2});
    expect_error(
        [&] { writer.write("b", eight); },
        {path.string(), "'b'", "out of declaration order", "'a' still needs 4 of its 4 bytes"});
    expect_error([&] { writer.write("a", eight); }, {path.string(), "'a'", "overruns"});
    writer.write("a", four);
    expect_error([&] { writer.write("a", four); }, {"'a'", "4 bytes more than its declared 4"});
    expect_error([&] { writer.write("ghost", four); }, {"'ghost'", "never declared"});
    expect_error([&] { writer.declare("c", DType::F32, {1}); },
                 {"'c'", "after data writing began"});
    writer.write("b", four);
    expect_error([&] { writer.commit(); }, {"'b'", "commit before all data", "4 of its 8 bytes"});
  }
  EXPECT_TRUE(entries_of(dir.path()).empty());  // nothing committed, temporary removed

  SafetensorsWriter writer(path);
  expect_error([&] { writer.add("x", DType::F32, {3}, four); }, {"'x'", "got 4 bytes", "needs 12"});
  expect_error([&] { writer.declare("neg", DType::F32, {2, -1}); }, {"'neg'", "negative"});
  expect_error(
      [&] {
        writer.declare("huge", DType::F64, {1LL << 40, 1LL << 40});
      },
      {"'huge'", "overflows"});
  expect_error([&] { writer.declare("__metadata__", DType::U8, {1}); }, {"reserved"});
  writer.add("x", DType::F32, {1}, four);
  expect_error([&] { writer.declare("x", DType::F32, {1}); }, {"'x'", "declared twice"});
  expect_error([&] { writer.write("x", four); }, {"'x'", "add()"});
  writer.commit();
  expect_error([&] { writer.commit(); }, {path.string(), "after commit"});
  expect_error([&] { writer.add("y", DType::F32, {1}, four); }, {"after commit"});
}

TEST(Safetensors, UncommittedWriterLeavesNoFile) {
  TempDir dir;
  {
    SafetensorsWriter writer(dir / "never.safetensors");
    writer.add("x", DType::U8, {2}, bytes_of(std::vector<std::uint8_t>{1, 2}));
    EXPECT_EQ(entries_of(dir.path()).size(), 1u);  // the temporary exists meanwhile
  }
  EXPECT_TRUE(entries_of(dir.path()).empty());
}

TEST(Safetensors, WritersMoveIntoContainers) {
  TempDir dir;
  std::vector<SafetensorsWriter> shards;
  for (const char* name : {"s0.safetensors", "s1.safetensors", "s2.safetensors"}) {
    shards.emplace_back(dir / name);
  }
  for (auto& shard : shards) shard.declare("v", DType::U8, {1});
  shards[1].write("v", bytes_of(std::vector<std::uint8_t>{7}));
  shards[1].commit();
  shards.clear();  // the two uncommitted shards vanish
  EXPECT_EQ(entries_of(dir.path()), std::vector<std::string>{"s1.safetensors"});
}

TEST(Safetensors, CommitReplacesAnExistingFile) {
  TempDir dir;
  const auto path = dir / "r.safetensors";
  for (const std::uint8_t value : {std::uint8_t{1}, std::uint8_t{2}}) {
    SafetensorsWriter writer(path);
    writer.add("v", DType::U8, {1}, bytes_of(std::vector<std::uint8_t>{value}));
    writer.commit();
  }
  EXPECT_EQ(values_of(SafetensorsFile::open(path)->tensor("v")), std::vector<double>{2.0});
  EXPECT_EQ(entries_of(dir.path()), std::vector<std::string>{"r.safetensors"});
}

struct BadFile {
  std::string label;
  std::string header;
  std::size_t data_bytes;
  std::vector<std::string> pieces;  // besides the file name
  std::optional<std::uint64_t> declared_length = std::nullopt;
};

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":" + dtype + ",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}

TEST(Safetensors, RefusesMalformedFilesNamingFileAndTensor) {
  const std::vector<BadFile> cases = {
      {"header length past the end", "{}", 0, {"header length 100", "runs past the end"}, 100},
      {"header length over 100 MB",
       "{}",
       0,
       {"header length 200000000", "exceeds the limit"},
       200'000'000},
      {"invalid JSON", "{\"a\":", 0, {"not valid JSON"}},
      {"JSON array", "[1,2]", 0, {"not a JSON object"}},
      {"entry not an object", "{\"x.weight\":3}", 0, {"'x.weight'", "not a JSON object"}},
      {"missing dtype",
       R"({"x.weight":{"shape":[1],"data_offsets":[0,4]}})",
       4,
       {"'x.weight'", "missing 'dtype'"}},
      {"missing shape",
       R"({"x.weight":{"dtype":"F32","data_offsets":[0,4]}})",
       4,
       {"'x.weight'", "missing 'shape'"}},
      {"missing data_offsets",
       R"({"x.weight":{"dtype":"F32","shape":[1]}})",
       4,
       {"'x.weight'", "missing 'data_offsets'"}},
      {"dtype not a string",
       "{" + entry("x.weight", "7", "[1]", "[0,4]") + "}",
       4,
       {"'x.weight'", "'dtype' is not a string"}},
      {"shape not an array",
       "{" + entry("x.weight", "\"F32\"", "\"1\"", "[0,4]") + "}",
       4,
       {"'x.weight'", "'shape' is not an array"}},
      {"shape not integers",
       "{" + entry("x.weight", "\"F32\"", "[1.5]", "[0,4]") + "}",
       4,
       {"'x.weight'", "shape dimension is not an integer"}},
      {"data_offsets of one",
       "{" + entry("x.weight", "\"F32\"", "[1]", "[4]") + "}",
       4,
       {"'x.weight'", "'data_offsets' is not an array of two integers"}},
      {"data_offsets negative",
       "{" + entry("x.weight", "\"F32\"", "[1]", "[-4,0]") + "}",
       4,
       {"'x.weight'", "data_offsets begin is negative"}},
      {"unknown dtype",
       "{" + entry("x.weight", "\"F128\"", "[1]", "[0,16]") + "}",
       16,
       {"'x.weight'", "unknown dtype 'F128'"}},
      {"negative dimension",
       "{" + entry("x.weight", "\"F32\"", "[2,-1]", "[0,4]") + "}",
       4,
       {"'x.weight'", "shape dimension is negative (-1)"}},
      {"byte count overflow",
       "{" + entry("x.weight", "\"F32\"", "[4611686018427387904,4]", "[0,4]") + "}",
       4,
       {"'x.weight'", "overflows"}},
      {"size mismatch",
       "{" + entry("x.weight", "\"F32\"", "[2,3]", "[0,20]") + "}",
       20,
       {"'x.weight'", "holds 20 bytes but F32 [2, 3] needs 24"}},
      {"begin after end",
       "{" + entry("x.weight", "\"U8\"", "[0]", "[8,4]") + "}",
       8,
       {"'x.weight'", "begin 8 is after end 4"}},
      {"data outside",
       "{" + entry("x.weight", "\"F32\"", "[100]", "[0,400]") + "}",
       300,
       {"tensor 'x.weight': data [0, 400) lies outside the 300-byte data section"}},
      {"overlap",
       "{" + entry("a", "\"F32\"", "[2]", "[0,8]") + "," + entry("b", "\"F32\"", "[2]", "[4,12]") +
           "}",
       12,
       {"'b'", "overlaps tensor 'a'"}},
      {"hole",
       "{" + entry("a", "\"F32\"", "[1]", "[0,4]") + "," + entry("b", "\"F32\"", "[1]", "[8,12]") +
           "}",
       12,
       {"'b'", "hole [4, 8)"}},
      {"unused tail",
       "{" + entry("a", "\"F32\"", "[1]", "[0,4]") + "}",
       10,
       {"tensors use 4 bytes of the 10-byte data section"}},
      {"metadata not an object", R"({"__metadata__":["a"]})", 0, {"__metadata__ is not"}},
      {"metadata value not a string",
       R"({"__metadata__":{"format":1}})",
       0,
       {"__metadata__ value of 'format' is not a string"}},
  };
  TempDir dir;
  for (const auto& bad : cases) {
    SCOPED_TRACE(bad.label);
    const auto path = dir / "model.safetensors";
    write_raw(path, bad.header, bad.data_bytes, bad.declared_length);
    std::vector<std::string> pieces{path.string()};
    pieces.insert(pieces.end(), bad.pieces.begin(), bad.pieces.end());
    try {
      SafetensorsFile::open(path);
      ADD_FAILURE() << "opened";
    } catch (const Error& error) {
      for (const auto& piece : pieces) {
        EXPECT_NE(std::string(error.what()).find(piece), std::string::npos)
            << "'" << error.what() << "' lacks '" << piece << "'";
      }
    }
  }
}

// Any corruption of a valid file either still parses or is a uq::Error: never
// another exception type, never a crash.
TEST(Safetensors, CorruptedHeadersFailCleanly) {
  TempDir dir;
  const auto good = dir / "good.safetensors";
  {
    SafetensorsWriter writer(good, {{"format", "pt"}});
    for (const auto& tensor : sample_tensors()) {
      writer.add(tensor.name, tensor.dtype, tensor.shape, tensor.bytes);
    }
    writer.commit();
  }
  const std::string original = read_text(good);
  std::mt19937 random(42);
  const auto bad = dir / "bad.safetensors";
  int refused = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string corrupted = original;
    const int flips = 1 + static_cast<int>(random() % 3);
    for (int i = 0; i < flips; ++i) {
      // Mostly the header (length and JSON), where the parsing happens.
      const std::size_t at = random() % std::min<std::size_t>(corrupted.size(), 700);
      corrupted[at] = static_cast<char>(random() % 256);
    }
    if (random() % 10 == 0) corrupted.resize(random() % corrupted.size());
    std::ofstream(bad, std::ios::binary | std::ios::trunc) << corrupted;
    try {
      SafetensorsFile::open(bad);
    } catch (const Error& error) {
      ++refused;
      EXPECT_NE(std::string(error.what()).find(bad.string()), std::string::npos) << error.what();
    }
  }
  EXPECT_GT(refused, 2000);
}

TEST(Safetensors, RefusesShortMissingAndHugeFiles) {
  TempDir dir;
  const auto short_path = dir / "short.safetensors";
  std::ofstream(short_path, std::ios::binary) << "abcde";
  expect_error([&] { SafetensorsFile::open(short_path); },
               {short_path.string(), "5-byte file is too short"});
  expect_error([&] { SafetensorsFile::open(dir / "absent.safetensors"); },
               {(dir / "absent.safetensors").string(), "No such file"});
  expect_error([&] { SafetensorsFile::open(dir.path()); }, {dir.path().string(), "not a regular"});

  // Over a million entries (values need not be valid: the count is checked first).
  std::string header = "{";
  for (int i = 0; i <= 1'000'000; ++i)
    header.append("\"").append(std::to_string(i)).append("\":0,");
  header.back() = '}';
  const auto many = dir / "many.safetensors";
  write_raw(many, header, 0);
  expect_error([&] { SafetensorsFile::open(many); },
               {many.string(), "1000001 tensors", "limit of 1000000"});
}

// Writes a small shard with the given tensors (1-element F32, value = index).
void write_shard(const fs::path& path, const std::vector<std::string>& names,
                 std::map<std::string, std::string> metadata = {}) {
  SafetensorsWriter writer(path, std::move(metadata));
  for (std::size_t i = 0; i < names.size(); ++i) {
    writer.add(names[i], DType::F32, {1}, bytes_of(std::vector<float>{static_cast<float>(i)}));
  }
  writer.commit();
}

TEST(Checkpoint, OpensShardsThroughTheIndex) {
  TempDir dir;
  write_shard(dir / "model-00001-of-00002.safetensors", {"a.weight", "b.weight"},
              {{"format", "pt"}});
  write_shard(dir / "model-00002-of-00002.safetensors", {"c.weight"});
  write_safetensors_index(dir.path(),
                          {{"a.weight", "model-00001-of-00002.safetensors"},
                           {"b.weight", "model-00001-of-00002.safetensors"},
                           {"c.weight", "model-00002-of-00002.safetensors"}},
                          12);
  const auto index = nlohmann::json::parse(read_text(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 12);
  EXPECT_EQ(index["weight_map"]["c.weight"], "model-00002-of-00002.safetensors");

  const auto checkpoint = Checkpoint::open(dir.path());
  EXPECT_EQ(checkpoint.names(), (std::vector<std::string>{"a.weight", "b.weight", "c.weight"}));
  EXPECT_EQ(checkpoint.tensor("b.weight").to_f32(), std::vector<float>{1.0f});
  EXPECT_EQ(checkpoint.tensor("c.weight").to_f32(), std::vector<float>{0.0f});
  EXPECT_EQ(checkpoint.file_of("c.weight").path().filename(), "model-00002-of-00002.safetensors");
  EXPECT_EQ(checkpoint.metadata().at("format"), "pt");
  EXPECT_EQ(checkpoint.total_bytes(), 12u);
  EXPECT_EQ(checkpoint.files().size(), 2u);
  EXPECT_TRUE(checkpoint.contains("a.weight"));
  expect_error([&] { checkpoint.tensor("d.weight"); }, {dir.path().string(), "'d.weight'"});
  expect_error(
      [&] {
        write_safetensors_index(dir.path(), {{"a", "../x.safetensors"}}, 1);
      },
      {"model.safetensors.index.json", "not a plain file name"});
}

TEST(Checkpoint, OpensSingleAndUnindexedFiles) {
  TempDir single;
  write_shard(single / "model.safetensors", {"x"});
  write_shard(single / "adapter.safetensors", {"x"});  // ignored: model.safetensors wins
  EXPECT_EQ(Checkpoint::open(single.path()).names(), std::vector<std::string>{"x"});
  EXPECT_EQ(Checkpoint::open(single / "adapter.safetensors").names(),
            std::vector<std::string>{"x"});

  TempDir odd;
  write_shard(odd / "weights.safetensors", {"w"});
  EXPECT_EQ(Checkpoint::open(odd.path()).names(), std::vector<std::string>{"w"});

  TempDir loose;
  write_shard(loose / "model-00001-of-00002.safetensors", {"a"});
  write_shard(loose / "model-00002-of-00002.safetensors", {"b"});
  const auto checkpoint = Checkpoint::open(loose.path());
  EXPECT_EQ(checkpoint.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(checkpoint.file_of("b").path().filename(), "model-00002-of-00002.safetensors");

  write_shard(loose / "model-extra.safetensors", {"b"});
  expect_error([&] { Checkpoint::open(loose.path()); },
               {loose.path().string(), "'b'", "model-00002-of-00002.safetensors",
                "model-extra.safetensors"});
}

TEST(Checkpoint, RefusesBadDirectoriesAndIndexes) {
  TempDir dir;
  expect_error([&] { Checkpoint::open(dir / "nowhere"); },
               {(dir / "nowhere").string(), "no such file or directory"});
  expect_error([&] { Checkpoint::open(dir.path()); },
               {dir.path().string(), "no model.safetensors"});

  TempDir outside;
  write_shard(outside / "stolen.safetensors", {"a"});
  write_shard(dir / "shard.safetensors", {"a", "b"});
  write_shard(dir / "other.safetensors", {"b"});
  fs::create_symlink(outside / "stolen.safetensors", dir / "link.safetensors");
  const auto index_path = dir / "model.safetensors.index.json";
  const auto with_index = [&](const std::string& weight_map) {
    write_file_atomic(index_path, "{\"weight_map\":" + weight_map + "}");
    return [&] { Checkpoint::open(dir.path()); };
  };
  const std::string where = index_path.string();
  expect_error(with_index(R"({"a":")" + (outside / "stolen.safetensors").string() + "\"}"),
               {where, "absolute path"});
  expect_error(with_index(R"({"a":"../x/stolen.safetensors"})"), {where, "'..'"});
  expect_error(with_index(R"({"a":"link.safetensors"})"),
               {where, "'link.safetensors'", "outside the checkpoint directory"});
  expect_error(with_index(R"({"a":"gone.safetensors"})"),
               {where, "'gone.safetensors'", "not exist"});
  expect_error(with_index(R"({"a":"shard.safetensors","c":"shard.safetensors"})"),
               {where, "'c'", "'shard.safetensors' which does not contain it"});
  expect_error(with_index(R"({"a":"shard.safetensors","b":"other.safetensors"})"),
               {dir.path().string(), "'b'", "appears in both"});
  expect_error(with_index(R"({"a":3})"), {where, "'a'", "not a string"});
  expect_error(with_index(R"([])"), {where, "weight_map"});
  write_file_atomic(index_path, "{\"weight_map\":");
  expect_error([&] { Checkpoint::open(dir.path()); }, {where, "not valid JSON"});
}

// The Hugging Face hub cache keeps files as symlinks from snapshots/<rev>/ to
// ../../blobs/<hash>; such a snapshot must open.
TEST(Checkpoint, AcceptsHubCacheSnapshotSymlinks) {
  TempDir repo;
  fs::create_directories(repo / "blobs");
  fs::create_directories(repo / "snapshots/abc123");
  write_shard(repo / "blobs/1111", {"a"});
  write_shard(repo / "blobs/2222", {"b"});
  fs::create_symlink("../../blobs/1111",
                     repo / "snapshots/abc123/model-00001-of-00002.safetensors");
  fs::create_symlink("../../blobs/2222",
                     repo / "snapshots/abc123/model-00002-of-00002.safetensors");
  write_safetensors_index(
      repo / "snapshots/abc123",
      {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}}, 8);
  EXPECT_EQ(Checkpoint::open(repo / "snapshots/abc123").names(),
            (std::vector<std::string>{"a", "b"}));
}

TEST(Checkpoint, BundledModelOpens) {
  const auto checkpoint = Checkpoint::open(test::bundled_model());
  const auto embed = checkpoint.tensor("model.embed_tokens.weight");
  EXPECT_EQ(embed.dtype, DType::BF16);
  EXPECT_EQ(embed.shape, (std::vector<std::int64_t>{4096, 256}));
  EXPECT_EQ(embed.nbytes, 4096u * 256u * 2u);
  EXPECT_TRUE(checkpoint.contains("model.layers.3.mlp.down_proj.weight"));
}

// Resident kilobytes of the mapping holding `address`, from /proc/self/smaps.
std::size_t resident_kb_of_mapping(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const auto target = reinterpret_cast<std::uintptr_t>(address);
  bool inside = false;
  std::string line;
  while (std::getline(smaps, line)) {
    std::uintptr_t start = 0, end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &start, &end) == 2 && line.find(' ') != 0) {
      inside = start <= target && target < end;
    } else if (inside && line.rfind("Rss:", 0) == 0) {
      return std::stoul(line.substr(4));
    }
  }
  ADD_FAILURE() << "no mapping holds the address";
  return 0;
}

TEST(Safetensors, ReleaseDropsResidentPagesAndDataStaysReadable) {
  const auto file = SafetensorsFile::open(test::bundled_model() / "model.safetensors");
  const auto embed = file->tensor("model.embed_tokens.weight");  // 2 MiB
  const auto before = embed.to_f32();                            // faults every page in
  const std::size_t resident = resident_kb_of_mapping(embed.data);
  file->release("model.embed_tokens.weight");
  const std::size_t released = resident_kb_of_mapping(embed.data);
  // All but the (at most two) pages shared with neighbours are dropped.
  EXPECT_GE(resident - released, embed.nbytes / 1024 - 8) << resident << " kB -> " << released;
  EXPECT_EQ(file->tensor("model.embed_tokens.weight").to_f32(), before);
  EXPECT_NO_THROW(file->release("model.norm.weight"));  // smaller than a page: nothing to drop
  expect_error([&] { file->release("absent"); }, {"model.safetensors", "'absent'"});
}

TEST(AtomicFile, ReplacesContentsAndLeavesNoTemporary) {
  TempDir dir;
  write_file_atomic(dir / "config.json", "{\"a\": 1}");
  write_file_atomic(dir / "config.json", "{\"a\": 2}\n");
  EXPECT_EQ(read_text(dir / "config.json"), "{\"a\": 2}\n");
  EXPECT_EQ(entries_of(dir.path()), std::vector<std::string>{"config.json"});
  expect_error([&] { write_file_atomic(dir / "missing/config.json", "x"); },
               {(dir / "missing/config.json").string(), "No such file or directory"});
}

TEST(SafetensorsWriter, MissingDirectoryFailsCleanly) {
  TempDir dir;
  const auto path = dir / "no/such/dir/model.safetensors";
  expect_error([&] { SafetensorsWriter writer(path); }, {path.string(), "No such file"});
}

// Death tests run in a forked child, so process-wide settings stay there.
TEST(SafetensorsWriterDeathTest, ReadOnlyDirectoryFailsCleanly) {
  TempDir dir;
  fs::permissions(dir.path(), fs::perms::owner_read | fs::perms::owner_exec |
                                  fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  const auto path = dir / "model.safetensors";
  EXPECT_EXIT(
      {
        // root ignores permissions: become an unprivileged user first.
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) std::_Exit(3);
        try {
          SafetensorsWriter writer(path);
          std::_Exit(1);
        } catch (const Error& error) {
          std::fprintf(stderr, "%s\n", error.what());
          std::_Exit(0);
        }
      },
      ::testing::ExitedWithCode(0), "model.safetensors: cannot create .*Permission denied");
  fs::permissions(dir.path(), fs::perms::owner_all);
  EXPECT_TRUE(entries_of(dir.path()).empty());
}

// RLIMIT_FSIZE with SIGXFSZ ignored makes write() fail with EFBIG: a full disk
// as far as the writer can tell.
void limit_file_size(rlim_t bytes) {
  std::signal(SIGXFSZ, SIG_IGN);
  const rlimit limit{bytes, bytes};
  if (setrlimit(RLIMIT_FSIZE, &limit) != 0) std::_Exit(3);
}

TEST(SafetensorsWriterDeathTest, WriteErrorOnCommitRemovesTemporary) {
  TempDir dir;
  const auto path = dir / "big.safetensors";
  EXPECT_EXIT(
      {
        limit_file_size(64 * 1024);
        try {
          SafetensorsWriter writer(path);
          writer.add("x", DType::U8, {4 << 20}, std::vector<std::byte>(4 << 20));
          writer.commit();
          std::_Exit(1);
        } catch (const Error& error) {
          std::fprintf(stderr, "%s\n", error.what());
          std::_Exit(entries_of(dir.path()).empty() ? 0 : 2);
        }
      },
      ::testing::ExitedWithCode(0), "big.safetensors: write failed: File too large");
}

TEST(SafetensorsWriterDeathTest, WriteErrorWhileStreamingRemovesTemporary) {
  TempDir dir;
  const auto path = dir / "stream.safetensors";
  EXPECT_EXIT(
      {
        limit_file_size(64 * 1024);
        SafetensorsWriter writer(path);
        writer.declare("x", DType::U8, {8 << 20});
        const std::vector<std::byte> chunk(2 << 20);
        try {
          for (int i = 0; i < 4; ++i) writer.write("x", chunk);
          std::_Exit(1);
        } catch (const Error& error) {
          std::fprintf(stderr, "%s\n", error.what());
          if (!entries_of(dir.path()).empty()) std::_Exit(2);
        }
        try {
          writer.commit();
          std::_Exit(4);
        } catch (const Error& error) {
          std::fprintf(stderr, "%s\n", error.what());
          std::_Exit(0);
        }
      },
      ::testing::ExitedWithCode(0),
      "stream.safetensors: write failed: File too large\n.*commit after an earlier failure");
}

TEST(SafetensorsOracle, ReadsWhatTheOfficialLibraryWrote) {
  if (!test::python_available()) GTEST_SKIP() << "oracle venv missing";
  TempDir dir;
  const auto result = test::run_oracle("safetensors_oracle.py", {"write", dir.path().string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto expected = nlohmann::json::parse(read_text(dir / "expected.json"));
  const auto file = SafetensorsFile::open(dir / "official.safetensors");
  using StringMap = std::map<std::string, std::string>;
  EXPECT_EQ(file->metadata(), expected["__metadata__"].get<StringMap>());
  EXPECT_EQ(file->names().size() + 1, expected.size());
  for (const auto& [name, want] : expected.items()) {
    if (name == "__metadata__") continue;
    SCOPED_TRACE(name);
    const auto view = file->tensor(name);
    EXPECT_EQ(dtype_name(view.dtype), want["dtype"].get<std::string>());
    EXPECT_EQ(view.shape, want["shape"].get<std::vector<std::int64_t>>());
    EXPECT_EQ(values_of(view), want["values"].get<std::vector<double>>());
  }
}

TEST(SafetensorsOracle, OfficialLibraryReadsWhatWeWrote) {
  if (!test::python_available()) GTEST_SKIP() << "oracle venv missing";
  TempDir dir;
  const auto path = dir / "ours.safetensors";
  const std::map<std::string, std::string> metadata{{"format", "mlx"}, {"quantization", "4bit"}};
  // Real values for every dtype: floats stored through convert_from_f32.
  const std::vector<float> floats{0.0f, -1.5f, 3.25f, 100.0f, -0.0625f, 7.0f};
  std::vector<SampleTensor> tensors;
  for (const DType dtype :
       {DType::F64, DType::F32, DType::F16, DType::BF16, DType::F8_E4M3, DType::F8_E5M2}) {
    std::vector<std::byte> bytes(floats.size() * dtype_size(dtype));
    convert_from_f32(floats.data(), floats.size(), dtype, bytes.data());
    tensors.push_back({"float." + std::string(dtype_name(dtype)), dtype, {2, 3}, bytes});
  }
  tensors.push_back(
      {"i64", DType::I64, {3}, bytes_of(std::vector<std::int64_t>{-5, 1LL << 40, 7})});
  tensors.push_back({"i32", DType::I32, {3}, bytes_of(std::vector<std::int32_t>{-5, 1 << 30, 7})});
  tensors.push_back({"i16", DType::I16, {3}, bytes_of(std::vector<std::int16_t>{-5, 32767, 7})});
  tensors.push_back({"i8", DType::I8, {3}, bytes_of(std::vector<std::int8_t>{-128, 127, 0})});
  tensors.push_back({"u8", DType::U8, {3}, bytes_of(std::vector<std::uint8_t>{0, 255, 9})});
  tensors.push_back(
      {"u32", DType::U32, {3}, bytes_of(std::vector<std::uint32_t>{0, 4000000000u, 9})});
  tensors.push_back({"bool", DType::BOOL, {3}, bytes_of(std::vector<std::uint8_t>{1, 0, 1})});
  tensors.push_back({"empty", DType::BF16, {0, 5}, {}});
  {
    SafetensorsWriter writer(path, metadata);
    // Half through add(), half declared and streamed in two chunks each.
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const auto& tensor = tensors[i];
      if (i % 2 == 0) {
        writer.add(tensor.name, tensor.dtype, tensor.shape, tensor.bytes);
      } else {
        writer.declare(tensor.name, tensor.dtype, tensor.shape);
      }
    }
    for (std::size_t i = 1; i < tensors.size(); i += 2) {
      const std::span<const std::byte> bytes(tensors[i].bytes);
      writer.write(tensors[i].name, bytes.first(bytes.size() / 2));
      writer.write(tensors[i].name, bytes.subspan(bytes.size() / 2));
    }
    writer.commit();
  }
  const auto out = dir / "read.json";
  const auto result =
      test::run_oracle("safetensors_oracle.py", {"read", path.string(), out.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto read = nlohmann::json::parse(read_text(out));
  EXPECT_EQ(read["__metadata__"].get<decltype(metadata)>(), metadata);
  EXPECT_EQ(read.size(), tensors.size() + 1);
  const auto ours = SafetensorsFile::open(path);
  for (const auto& tensor : tensors) {
    SCOPED_TRACE(tensor.name);
    ASSERT_TRUE(read.contains(tensor.name));
    const auto& got = read[tensor.name];
    EXPECT_EQ(got["dtype"].get<std::string>(), dtype_name(tensor.dtype));
    EXPECT_EQ(got["shape"].get<std::vector<std::int64_t>>(), tensor.shape);
    EXPECT_EQ(got["values"].get<std::vector<double>>(), values_of(ours->tensor(tensor.name)));
  }
  // Spot values independent of our reader.
  EXPECT_EQ(read["float.BF16"]["values"][2].get<double>(), 3.25);
  EXPECT_EQ(read["float.F8_E4M3"]["values"][3].get<double>(), 96.0);  // 100 rounds to 96 in e4m3
  EXPECT_EQ(read["u32"]["values"][1].get<double>(), 4e9);
  EXPECT_EQ(read["i64"]["values"][1].get<double>(), 1099511627776.0);
}

}  // namespace
}  // namespace uq
