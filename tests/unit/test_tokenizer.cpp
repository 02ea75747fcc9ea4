// The tokenizer against the bundled model's stored references (tests/data/refs.json,
// produced by HF tokenizers), plus the components' edge cases and error messages.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/tokenizer/byte_level.hpp"
#include "io/tokenizer/split.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "io/tokenizer/utf8.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

const nlohmann::json& refs() {
  static const auto parsed =
      nlohmann::json::parse(read_file(test::source_path("tests/data/refs.json")));
  return parsed;
}

const Tokenizer& bundled() {
  static const Tokenizer tokenizer = Tokenizer::from_file(test::bundled_model() / "tokenizer.json");
  return tokenizer;
}

// The error message of `body`, which must throw uq::Error.
template <class Body>
std::string error_of(Body body) {
  try {
    body();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected uq::Error";
  return "";
}

// A tokenizer.json with a 4-token vocab (a, b, ab, c) and one merge; `overrides`
// replaces top-level parts, and fields of "model" one by one.
std::string small_tokenizer_json(const Json& overrides = Json::object()) {
  Json spec = {{"version", "1.0"},
               {"added_tokens", Json::array()},
               {"normalizer", nullptr},
               {"pre_tokenizer", nullptr},
               {"post_processor", {{"type", "TemplateProcessing"}, {"single", Json::array()}}},
               {"decoder", nullptr},
               {"model",
                {{"type", "BPE"},
                 {"unk_token", nullptr},
                 {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}, {"c", 3}}},
                 {"merges", Json::array({Json::array({"a", "b"})})}}}};
  for (const auto& [key, value] : overrides.items()) {
    if (key == "model") {
      for (const auto& [field, field_value] : value.items()) spec["model"][field] = field_value;
    } else {
      spec[key] = value;
    }
  }
  return spec.dump();
}

TEST(Tokenizer, BundledCasesMatchHuggingFace) {
  const auto& cases = refs().at("tokenizer_cases");
  ASSERT_GE(cases.size(), 10u);
  for (const auto& c : cases) {
    const auto text = c.at("text").get<std::string>();
    const auto expected = c.at("ids").get<std::vector<std::int32_t>>();
    EXPECT_EQ(bundled().encode(text), expected) << "text: '" << text << "'";
    EXPECT_EQ(bundled().decode(expected), c.at("decoded").get<std::string>());
  }
}

TEST(Tokenizer, BundledValidationFileMatchesHuggingFace) {
  const std::string text = read_file(test::source_path("data/val.txt"));
  ASSERT_GT(text.size(), 100000u);
  const std::vector<std::int32_t> ids = bundled().encode(text);
  EXPECT_EQ(static_cast<std::int64_t>(ids.size()), refs().at("val_num_ids").get<std::int64_t>());
  const auto head = refs().at("val_ids_head").get<std::vector<std::int32_t>>();
  ASSERT_GE(ids.size(), head.size());
  EXPECT_EQ(std::vector<std::int32_t>(ids.begin(),
                                      ids.begin() + static_cast<std::ptrdiff_t>(head.size())),
            head);
  EXPECT_EQ(bundled().decode(ids), text);
}

TEST(Tokenizer, ConcurrentEncodingGivesTheSameIds) {
  const std::string text = read_file(test::source_path("data/val.txt"));
  const auto tokenizer = Tokenizer::from_file(test::bundled_model() / "tokenizer.json");
  std::vector<std::vector<std::int32_t>> results(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < results.size(); ++t) {
    // Different slices first so that the threads fill the shared word cache together.
    threads.emplace_back([&, t] {
      (void)tokenizer.encode(text.substr(t * 1000, 50000));
      results[t] = tokenizer.encode(text);
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& ids : results) {
    EXPECT_EQ(static_cast<std::int64_t>(ids.size()), refs().at("val_num_ids").get<std::int64_t>());
    EXPECT_TRUE(ids == results[0]);
  }
}

TEST(Tokenizer, BundledVocabularyAndSpecialTokens) {
  EXPECT_EQ(bundled().vocab_size(), 4096);
  EXPECT_EQ(bundled().token_to_id("<|endoftext|>"), 0);
  EXPECT_EQ(bundled().id_to_token(0), "<|endoftext|>");
  EXPECT_TRUE(bundled().is_special(0));
  EXPECT_FALSE(bundled().is_special(1));
  EXPECT_EQ(bundled().token_to_id("Ġthe"), 259);
  EXPECT_FALSE(bundled().token_to_id("no such token").has_value());
  EXPECT_EQ(bundled().merges().size(), 3839u);
  EXPECT_EQ(bundled().merges().front(), (std::pair<std::string, std::string>{"t", "h"}));
  EXPECT_EQ(bundled().tokens().size(), 4096u);
  EXPECT_EQ(bundled().tokens()[259], "Ġthe");

  // Added tokens are matched in the text and never split.
  const auto ids = bundled().encode("the<|endoftext|>the");
  EXPECT_EQ(ids,
            (std::vector<std::int32_t>{bundled().encode("the")[0], 0, bundled().encode("the")[0]}));
  EXPECT_EQ(bundled().decode(ids), "the<|endoftext|>the");
  EXPECT_EQ(bundled().decode(ids, /*skip_special_tokens=*/true), "thethe");
  // HF skips ids no token has.
  EXPECT_EQ(bundled().decode(std::vector<std::int32_t>{259, 99999, -1}), " the");
  EXPECT_THAT(error_of([] { (void)bundled().id_to_token(4096); }), HasSubstr("token id 4096"));
}

TEST(Tokenizer, RejectsInvalidUtf8AndNamesTheByte) {
  EXPECT_EQ(error_of([] { (void)bundled().encode("abc\xff"); }),
            "input text is not valid UTF-8 at byte 3");
  EXPECT_EQ(error_of([] { (void)bundled().encode("\xC3\xA9\xE2\x82"); }),  // truncated euro sign
            "input text is not valid UTF-8 at byte 2");
  EXPECT_EQ(error_of([] { (void)bundled().encode("\xED\xA0\x80"); }),  // a UTF-16 surrogate
            "input text is not valid UTF-8 at byte 0");
  EXPECT_EQ(error_of([] { (void)bundled().encode("\xC0\xAF"); }),  // overlong '/'
            "input text is not valid UTF-8 at byte 0");
}

TEST(Tokenizer, FileErrorsNameTheFileAndTheProblem) {
  EXPECT_THAT(error_of([] { (void)Tokenizer::from_file("/nonexistent/tokenizer.json"); }),
              HasSubstr("/nonexistent/tokenizer.json"));
  EXPECT_THAT(error_of([] { (void)Tokenizer::from_json("{not json", "broken.json"); }),
              HasSubstr("broken.json: invalid tokenizer JSON"));

  const auto unknown_model = small_tokenizer_json({{"model", {{"type", "WordPiece"}}}});
  const auto model_error = error_of([&] { (void)Tokenizer::from_json(unknown_model, "t.json"); });
  EXPECT_THAT(model_error, HasSubstr("t.json"));
  EXPECT_THAT(model_error, HasSubstr("unsupported model type 'WordPiece' (supported: BPE)"));

  const auto unknown_pre =
      small_tokenizer_json({{"pre_tokenizer", {{"type", "BertPreTokenizer"}}}});
  const auto pre_error = error_of([&] { (void)Tokenizer::from_json(unknown_pre); });
  EXPECT_THAT(pre_error, HasSubstr("unsupported pre_tokenizer type 'BertPreTokenizer'"));
  EXPECT_THAT(pre_error, HasSubstr("ByteLevel, Split, Digits"));

  const auto unknown_norm = small_tokenizer_json({{"normalizer", {{"type", "Precompiled"}}}});
  const auto norm_error = error_of([&] { (void)Tokenizer::from_json(unknown_norm); });
  EXPECT_THAT(norm_error, HasSubstr("unsupported normalizer type 'Precompiled'"));
  EXPECT_THAT(norm_error, HasSubstr("NFC, NFD, NFKC, NFKD, Lowercase"));

  const auto unknown_decoder = small_tokenizer_json({{"decoder", {{"type", "WordPiece"}}}});
  EXPECT_THAT(error_of([&] { (void)Tokenizer::from_json(unknown_decoder); }),
              HasSubstr("unsupported decoder type 'WordPiece'"));

  const auto bad_merge = small_tokenizer_json({{"model", {{"merges", Json::array({"a x"})}}}});
  EXPECT_THAT(error_of([&] { (void)Tokenizer::from_json(bad_merge); }),
              HasSubstr("model.merges[0] 'a x': token 'x' is not in model.vocab"));
  const auto bad_merge_format =
      small_tokenizer_json({{"model", {{"merges", Json::array({"ab"})}}}});
  EXPECT_THAT(error_of([&] { (void)Tokenizer::from_json(bad_merge_format); }),
              HasSubstr("model.merges[0] 'ab' is not two tokens"));
  const auto bad_regex = small_tokenizer_json(
      {{"pre_tokenizer",
        {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}}}});
  EXPECT_THAT(error_of([&] { (void)Tokenizer::from_json(bad_regex); }),
              HasSubstr("pre_tokenizer Split: invalid regex '(unclosed'"));
  const auto bad_behavior = small_tokenizer_json(
      {{"pre_tokenizer",
        {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Sideways"}}}});
  EXPECT_THAT(error_of([&] { (void)Tokenizer::from_json(bad_behavior); }),
              HasSubstr("unknown split behavior 'Sideways'"));
}

TEST(Tokenizer, MergesInBothFormatsGiveTheSameTokenizer) {
  const auto pairs = Tokenizer::from_json(small_tokenizer_json());
  const auto legacy =
      Tokenizer::from_json(small_tokenizer_json({{"model", {{"merges", Json::array({"a b"})}}}}));
  for (const auto* tokenizer : {&pairs, &legacy}) {
    EXPECT_EQ(tokenizer->encode("abcab"), (std::vector<std::int32_t>{2, 3, 2}));
    EXPECT_EQ(tokenizer->merges(), (std::vector<std::pair<std::string, std::string>>{{"a", "b"}}));
  }
  // Characters with no token are dropped when there is no unk token (as in HF,
  // whose results these expectations are), and the neighbours can then merge...
  EXPECT_EQ(pairs.encode("axb"), (std::vector<std::int32_t>{2}));
  // ...and become the unk token otherwise, fused when fuse_unk is set.
  const auto unk = Tokenizer::from_json(
      small_tokenizer_json({{"model", {{"unk_token", "c"}, {"fuse_unk", true}}}}));
  EXPECT_EQ(unk.encode("axyab"), (std::vector<std::int32_t>{0, 3, 2}));
  const auto unfused =
      Tokenizer::from_json(small_tokenizer_json({{"model", {{"unk_token", "c"}}}}));
  EXPECT_EQ(unfused.encode("axyab"), (std::vector<std::int32_t>{0, 3, 3, 2}));
  EXPECT_EQ(unfused.encode("axb"), (std::vector<std::int32_t>{0, 3, 1}));
}

TEST(Tokenizer, ByteFallbackAndMetaspaceDecoding) {
  nlohmann::json vocab = {{"<unk>", 0},
                          {"\xE2\x96\x81"
                           "a",
                           1},
                          {"\xE2\x96\x81", 2},
                          {"a", 3}};
  for (int byte = 0; byte < 256; ++byte) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", byte);
    vocab[name] = 4 + byte;
  }
  const auto json = small_tokenizer_json(
      {{"normalizer",
        {{"type", "Sequence"},
         {"normalizers",
          {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
           {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}}},
       {"decoder",
        {{"type", "Sequence"},
         {"decoders",
          {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
           {{"type", "ByteFallback"}},
           {{"type", "Fuse"}},
           {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
       {"model",
        {{"unk_token", "<unk>"},
         {"byte_fallback", true},
         {"vocab", vocab},
         {"merges", Json::array({Json::array({"\xE2\x96\x81", "a"})})}}}});
  const auto tokenizer = Tokenizer::from_json(json);
  // "a é": ▁a ▁ <0xC3> <0xA9>
  const auto ids = tokenizer.encode("a \xC3\xA9");
  EXPECT_EQ(ids, (std::vector<std::int32_t>{1, 2, 4 + 0xC3, 4 + 0xA9}));
  EXPECT_EQ(tokenizer.decode(ids), "a \xC3\xA9");
  // A lone continuation byte decodes to U+FFFD.
  EXPECT_EQ(tokenizer.decode(std::vector<std::int32_t>{1, 4 + 0xA9}), "a\xEF\xBF\xBD");
}

// tests/oracle/tokenizer_oracle.py builds tokenizers of several families with HF
// `tokenizers` and records its results; every one must be reproduced exactly.
TEST(TokenizerOracle, EncodeAndDecodeMatchHuggingFaceTokenizers) {
  if (!test::python_available()) GTEST_SKIP() << "oracle venv not installed";
  const test::TempDir dir;
  const auto oracle = test::run_oracle("tokenizer_oracle.py", {dir.path().string()});
  ASSERT_EQ(oracle.exit_code, 0) << oracle.err;
  const auto expected = Json::parse(read_file(dir / "expected.json"));
  ASSERT_GE(expected.at("tokenizers").size(), 10u);
  for (const auto& entry : expected.at("tokenizers")) {
    const auto name = entry.at("name").get<std::string>();
    SCOPED_TRACE(name);
    const auto tokenizer = Tokenizer::from_file(dir / entry.at("file").get<std::string>());
    EXPECT_EQ(tokenizer.vocab_size(), entry.at("vocab_size").get<std::int64_t>());
    int mismatches = 0;
    for (const auto& c : entry.at("cases")) {
      const auto text = c.at("text").get<std::string>();
      const auto ids = c.at("ids").get<std::vector<std::int32_t>>();
      const auto encoded = tokenizer.encode(text);
      EXPECT_EQ(encoded, ids) << "text: '" << text << "'";
      EXPECT_EQ(tokenizer.decode(ids), c.at("decoded").get<std::string>())
          << "text: '" << text << "'";
      EXPECT_EQ(tokenizer.decode(ids, /*skip_special_tokens=*/true),
                c.at("decoded_skip_special").get<std::string>())
          << "text: '" << text << "'";
      mismatches += encoded != ids;
    }
    EXPECT_EQ(mismatches, 0);
    if (entry.contains("val_ids")) {
      const std::string val_text = read_file(test::source_path("data/val.txt"));
      EXPECT_TRUE(tokenizer.encode(val_text) ==
                  entry.at("val_ids").get<std::vector<std::int32_t>>())
          << "data/val.txt encodes differently";
    }
    for (const auto& single : entry.at("single_id_decodes")) {
      const auto id = single.at(0).get<std::int32_t>();
      EXPECT_EQ(tokenizer.decode(std::vector<std::int32_t>{id}), single.at(1).get<std::string>())
          << "id " << id;
    }
  }
}

TEST(Utf8, LossyDecodingReplacesMaximalInvalidSubparts) {
  EXPECT_EQ(utf8::from_bytes_lossy("ok"), "ok");
  // Truncated 3-byte sequence then ASCII: one replacement for the two bytes.
  EXPECT_EQ(utf8::from_bytes_lossy("\xE2\x82"
                                   "a"),
            "\xEF\xBF\xBD"
            "a");
  // Two stray continuation bytes: two replacements.
  EXPECT_EQ(utf8::from_bytes_lossy("\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(utf8::from_bytes_lossy("\xF0\x9F\x99\x82"), "\xF0\x9F\x99\x82");
}

TEST(ByteLevel, MapsEveryByteToAPrintableCharacterAndBack) {
  EXPECT_EQ(byte_level::byte_to_char(' '), U'\u0120');   // Ġ
  EXPECT_EQ(byte_level::byte_to_char('\n'), U'\u010A');  // Ċ
  EXPECT_EQ(byte_level::byte_to_char('a'), U'a');
  EXPECT_EQ(byte_level::byte_to_char(0xAD), U'\u0143');  // the last remapped byte
  for (int byte = 0; byte < 256; ++byte) {
    const auto back =
        byte_level::char_to_byte(byte_level::byte_to_char(static_cast<std::uint8_t>(byte)));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, byte);
  }
  EXPECT_FALSE(byte_level::char_to_byte(U'\u0144').has_value());
}

TEST(Split, BehaviorsFollowHuggingFace) {
  // "a-b--c" split at each '-' (HF's documented examples for the behaviors).
  const std::string text = "a-b--c";
  const std::vector<ByteRange> dashes{{1, 2}, {3, 4}, {4, 5}};
  const auto pieces = [&](SplitBehavior behavior, bool invert = false) {
    std::vector<std::string> out;
    for (const ByteRange& r : split_at_matches(text.size(), dashes, behavior, invert)) {
      out.push_back(text.substr(r.begin, r.end - r.begin));
    }
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces(SplitBehavior::Removed), (V{"a", "b", "c"}));
  EXPECT_EQ(pieces(SplitBehavior::Isolated), (V{"a", "-", "b", "-", "-", "c"}));
  EXPECT_EQ(pieces(SplitBehavior::MergedWithPrevious), (V{"a-", "b-", "-", "c"}));
  EXPECT_EQ(pieces(SplitBehavior::MergedWithNext), (V{"a", "-b", "-", "-c"}));
  EXPECT_EQ(pieces(SplitBehavior::Contiguous), (V{"a", "-", "b", "--", "c"}));
  EXPECT_EQ(pieces(SplitBehavior::Removed, /*invert=*/true), (V{"-", "-", "-"}));
  EXPECT_EQ(pieces(SplitBehavior::Contiguous, /*invert=*/true), (V{"a", "-", "b", "--", "c"}));
}

}  // namespace
}  // namespace uq
