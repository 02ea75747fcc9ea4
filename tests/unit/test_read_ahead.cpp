// ReadAhead: ranges of several files come back in order with exactly their
// bytes (unaligned offsets, the end of a file, a file revisited), whatever the
// read-ahead budget, through direct I/O (ext4 temp dirs) and through the page
// cache (tmpfs refuses O_DIRECT); read failures name the file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "io/read_ahead.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {
namespace fs = std::filesystem;

std::vector<std::byte> pattern(std::size_t size, unsigned seed) {
  std::vector<std::byte> bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = std::byte((i * 7 + seed) % 251);
  return bytes;
}

void write_file(const fs::path& path, const std::vector<std::byte>& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
}

std::string error_of(ReadAhead& reader) {
  try {
    reader.next();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

void expect_ranges_read_back(const fs::path& dir) {
  const auto a = pattern(100'000, 1);
  const auto b = pattern(5'000, 2);
  write_file(dir / "a.bin", a);
  write_file(dir / "b.bin", b);
  const std::vector<ReadRange> ranges{{dir / "a.bin", 0, 10},      {dir / "a.bin", 4095, 4099},
                                      {dir / "a.bin", 99'990, 10}, {dir / "b.bin", 1, 4'999},
                                      {dir / "a.bin", 5, 70'000},  {dir / "b.bin", 0, 0}};
  for (const std::size_t budget : {std::size_t{1}, std::size_t{1} << 20}) {
    ReadAhead reader(ranges, budget);
    for (const auto& range : ranges) {
      const auto& source = range.file.filename() == "a.bin" ? a : b;
      const auto got = reader.next();
      ASSERT_EQ(got.size(), range.bytes);
      const auto first = source.begin() + static_cast<std::ptrdiff_t>(range.offset);
      EXPECT_TRUE(std::equal(got.begin(), got.end(), first))
          << range.file << " at " << range.offset << ", budget " << budget;
    }
    EXPECT_NE(error_of(reader).find("all 6 ranges were read"), std::string::npos);
  }
}

TEST(ReadAhead, RangesComeBackInOrder) {
  test::TempDir dir;
  expect_ranges_read_back(dir.path());
}

TEST(ReadAhead, WithoutDirectIo) {
  if (!fs::is_directory("/dev/shm")) GTEST_SKIP() << "no tmpfs at /dev/shm";
  const fs::path dir = fs::path("/dev/shm") / ("uq-read-ahead-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  expect_ranges_read_back(dir);
  fs::remove_all(dir);
}

TEST(ReadAhead, FailuresNameTheFile) {
  test::TempDir dir;
  write_file(dir / "short.bin", pattern(100, 3));
  ReadAhead reader({{dir / "short.bin", 0, 50},
                    {dir / "short.bin", 90, 20},
                    {dir / "missing.bin", 0, 1},
                    {dir / "short.bin", 0, 100}},
                   1 << 20);
  EXPECT_EQ(reader.next().size(), 50u);
  auto error = error_of(reader);
  EXPECT_NE(error.find("short.bin: cannot read 20 bytes at offset 90: the file is shorter"),
            std::string::npos)
      << error;
  error = error_of(reader);
  EXPECT_NE(error.find("missing.bin: cannot open"), std::string::npos) << error;
  EXPECT_EQ(reader.next().size(), 100u);
  // Abandoned with ranges still pending: the destructor stops the reader.
  ReadAhead abandoned({{dir / "short.bin", 0, 100}, {dir / "short.bin", 0, 100}}, 1);
}

}  // namespace
}  // namespace uq
