// Inputs the fuzz targets (fuzz/) found mishandled, minimized, kept as tests.
// Some only fail under the sanitizers (scripts/sanitize.sh runs them there).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "core/error.hpp"
#include "io/formats/gguf_llama.hpp"
#include "io/formats/gguf_reader.hpp"
#include "io/formats/gguf_writer.hpp"
#include "io/safetensors.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

// Runs `body`, which must throw uq::Error whose message contains `piece`.
template <class Body>
void expect_error(Body&& body, const std::string& piece) {
  try {
    body();
    ADD_FAILURE() << "no error; expected one mentioning '" << piece << "'";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(piece), std::string::npos) << error.what();
  }
}

std::string bpe_json(const std::string& vocab, const std::string& rest = "") {
  return R"({"model":{"type":"BPE","vocab":)" + vocab + R"(,"merges":[]})" + rest + "}";
}

// fuzz_safetensors: an empty F32 tensor made convert_to_f32 memcpy from the
// null data() of an empty vector (UBSan: null pointer passed as argument).
TEST(FuzzFindings, EmptyFloatTensorsConvert) {
  test::TempDir dir;
  const auto path = dir / "empty.safetensors";
  {
    SafetensorsWriter writer(path);
    writer.add("empty", DType::F32, {0, 5}, {});
    writer.commit();
  }
  const auto file = SafetensorsFile::open(path);
  EXPECT_TRUE(file->tensor("empty").to_f32().empty());
  std::vector<std::byte> none;
  convert_from_f32(nullptr, 0, DType::F32, none.data());
}

// fuzz_tokenizer: ids written as floats or huge numbers converted to int64
// with undefined behaviour (UBSan: 2.3e71 is outside the range of long).
TEST(FuzzFindings, NonIntegerAndHugeIdsAreRefused) {
  expect_error([] { Tokenizer::from_json(bpe_json(R"({"a":0,"b":2.30444e71})")); },
               "model.vocab id: expected an integer, got 2.30444e+71");
  expect_error([] { Tokenizer::from_json(bpe_json(R"({"a":1.5})")); },
               "model.vocab id: expected an integer, got 1.5");
  expect_error([] { Tokenizer::from_json(bpe_json(R"({"a":18446744073709551615})")); },
               "model.vocab id: 18446744073709551615 is out of range");
  expect_error(
      [] {
        Tokenizer::from_json(
            bpe_json(R"({"a":0})", R"(,"added_tokens":[{"id":1e30,"content":"x"}])"));
      },
      "id: expected an integer, got 1e+30");
  expect_error(
      [] {
        Tokenizer::from_json(bpe_json(
            R"({"a":0})", R"(,"decoder":{"type":"Strip","content":" ","start":-1,"stop":0})"));
      },
      "start: -1 is out of range");
}

// fuzz_gguf: a token that is not valid UTF-8 made tokenizer_json_from_gguf's
// JSON dump throw nlohmann's type_error instead of uq::Error.
TEST(FuzzFindings, GgufTokensMustBeUtf8) {
  test::TempDir dir;
  {
    GgufWriter writer(dir / "t.gguf");
    writer.add_string("tokenizer.ggml.model", "gpt2");
    writer.add_string("tokenizer.ggml.pre", "gpt-2");
    writer.add_strings("tokenizer.ggml.tokens", {"a", "\xff"});
    writer.commit();
  }
  expect_error([&] { (void)tokenizer_json_from_gguf(*GgufFile::open(dir / "t.gguf")); },
               "t.gguf: metadata 'tokenizer.ggml.tokens' or 'tokenizer.ggml.merges' holds text "
               "that is not valid UTF-8");
}

}  // namespace
}  // namespace uq
