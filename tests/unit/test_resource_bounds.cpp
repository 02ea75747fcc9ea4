// Declared sizes are checked before anything is allocated: files claiming
// absurd sizes fail fast, naming the file, with small allocations only.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <new>
#include <string>

#include "core/error.hpp"
#include "io/safetensors.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "support/test_support.hpp"

// The largest single allocation through operator new in this test executable.
// (The replacement pair below is malloc/free on both sides; GCC's check cannot
// see that once the calls are inlined into each other.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
std::atomic<std::size_t> largest_allocation{0};
}  // namespace

void* operator new(std::size_t size) {
  std::size_t seen = largest_allocation.load(std::memory_order_relaxed);
  while (size > seen && !largest_allocation.compare_exchange_weak(seen, size)) {
  }
  if (void* memory = std::malloc(size == 0 ? 1 : size)) return memory;
  throw std::bad_alloc();
}
void operator delete(void* memory) noexcept {
  std::free(memory);
}
void operator delete(void* memory, std::size_t) noexcept {
  std::free(memory);
}

namespace uq {
namespace {

constexpr std::size_t kSmallAllocation = 1 << 20;

// Runs `body`, which must throw uq::Error containing every piece, within a
// second and without any allocation of 1 MiB or more.
template <class Body>
void expect_bounded_failure(Body&& body, std::initializer_list<std::string> pieces) {
  largest_allocation = 0;
  const auto start = std::chrono::steady_clock::now();
  try {
    body();
    ADD_FAILURE() << "no error";
  } catch (const Error& error) {
    for (const auto& piece : pieces) {
      EXPECT_NE(std::string(error.what()).find(piece), std::string::npos)
          << "'" << error.what() << "' lacks '" << piece << "'";
    }
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::seconds(1));
  EXPECT_LT(largest_allocation.load(), kSmallAllocation);
}

void write_safetensors(const std::filesystem::path& path, const std::string& header,
                       std::uint64_t declared_length, std::size_t data_bytes) {
  std::ofstream out(path, std::ios::binary);
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((declared_length >> (8 * i)) & 0xff));
  out << header << std::string(data_bytes, '\0');
}

TEST(ResourceBounds, SafetensorsClaimingTenToTheFifteenElementsFailsFast) {
  test::TempDir dir;
  const auto path = dir / "huge.safetensors";
  // 10^15 F32 elements = 4 * 10^15 bytes, claimed by offsets the file does not hold.
  const std::string lying_offsets =
      R"({"w":{"dtype":"F32","shape":[1000000,1000000000],"data_offsets":[0,4000000000000000]}})";
  write_safetensors(path, lying_offsets, lying_offsets.size(), 16);
  expect_bounded_failure([&] { SafetensorsFile::open(path); },
                         {path.string(), "'w'", "outside the 16-byte data section"});

  // The same shape with offsets that fit the file: the sizes disagree.
  const std::string small_offsets =
      R"({"w":{"dtype":"F32","shape":[1000000,1000000000],"data_offsets":[0,16]}})";
  write_safetensors(path, small_offsets, small_offsets.size(), 16);
  expect_bounded_failure([&] { SafetensorsFile::open(path); },
                         {path.string(), "'w'", "needs 4000000000000000"});

  // A header length of 10^15 bytes.
  write_safetensors(path, "{}", 1'000'000'000'000'000, 0);
  expect_bounded_failure([&] { SafetensorsFile::open(path); },
                         {path.string(), "header length 1000000000000000 exceeds the limit"});
}

std::string tokenizer_json(const std::string& vocab, const std::string& added_tokens) {
  return R"({"model":{"type":"BPE","vocab":)" + vocab + R"(,"merges":[]},"added_tokens":)" +
         added_tokens + "}";
}

TEST(ResourceBounds, TokenizerIdsFarBeyondTheVocabularyFailFast) {
  expect_bounded_failure(
      [] { Tokenizer::from_json(tokenizer_json(R"({"a":0,"b":2147483647})", "[]"), "t.json"); },
      {"t.json", "model.vocab: largest id 2147483647", "unused"});
  expect_bounded_failure(
      [] {
        Tokenizer::from_json(
            tokenizer_json(R"({"a":0})", R"([{"id":2147483647,"content":"<big>"}])"), "t.json");
      },
      {"t.json", "added_tokens: id 2147483647 of '<big>'", "unused"});
  // Gaps of ordinary size stay accepted (ids reserved for later tokens).
  const auto sparse = Tokenizer::from_json(
      tokenizer_json(R"({"a":0,"b":1000})", R"([{"id":5000,"content":"<eot>"}])"), "t.json");
  EXPECT_EQ(sparse.vocab_size(), 5001);
  EXPECT_EQ(sparse.encode("ab<eot>"), (std::vector<std::int32_t>{0, 1000, 5000}));
}

}  // namespace
}  // namespace uq
