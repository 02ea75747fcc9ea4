// Streaming quantization: chunked output equals the in-memory quantize + save
// byte for byte for every backend and awkward chunk sizes; the pieces it is
// built from (parameter names, the spooling layout output, byte sizes, the
// memory budget, synthetic checkpoints).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "api/backend.hpp"
#include "api/memory_budget.hpp"
#include "api/quantize.hpp"
#include "api/streaming_quantize.hpp"
#include "core/error.hpp"
#include "core/thread_pool.hpp"
#include "io/byte_size.hpp"
#include "io/formats/layout_writer.hpp"
#include "io/hf_config.hpp"
#include "io/safetensors.hpp"
#include "model/decoder.hpp"
#include "model/float_weight.hpp"
#include "model/parameter_names.hpp"
#include "model/synthetic_checkpoint.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {
namespace fs = std::filesystem;
using test::read_text;
using test::TempDir;

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(ParameterNames, MatchTheModelsOrder) {
  const auto& model = *test::bundled().model;
  const auto modules = module_shapes(model.config());
  const auto named = model.named_weights();
  ASSERT_EQ(modules.size(), named.size());
  for (std::size_t i = 0; i < named.size(); ++i) {
    EXPECT_EQ(modules[i].path, named[i].first);
    EXPECT_EQ(modules[i].out_features, named[i].second->out_features());
    EXPECT_EQ(modules[i].in_features, named[i].second->in_features());
  }
  const auto vectors = vector_shapes(model.config());
  const auto named_vectors = model.named_vectors();
  ASSERT_EQ(vectors.size(), named_vectors.size());
  for (std::size_t i = 0; i < vectors.size(); ++i) {
    EXPECT_EQ(vectors[i].name, named_vectors[i].first);
    EXPECT_EQ(vectors[i].size, static_cast<std::int64_t>(named_vectors[i].second->size()));
  }
}

TEST(ByteSize, ParsesUnitsAndRejectsGarbage) {
  EXPECT_EQ(parse_byte_size("5GB", "x"), 5'000'000'000u);
  EXPECT_EQ(parse_byte_size("500mb", "x"), 500'000'000u);
  EXPECT_EQ(parse_byte_size("2GiB", "x"), 2ull << 30);
  EXPECT_EQ(parse_byte_size("1.5KiB", "x"), 1536u);
  EXPECT_EQ(parse_byte_size("123", "x"), 123u);
  for (const char* bad : {"", "GB", "5XB", "-1GB", "1.2.3MB", "0"}) {
    EXPECT_NE(error_of([&] {
                parse_byte_size(bad, "option --shard-size");
              }).find("option --shard-size '" + std::string(bad) + "'"),
              std::string::npos)
        << bad;
  }
}

struct Case {
  const char* backend;
  int bits;
  std::int64_t chunk_size;
  const char* extra;  // a layer_bits/skip variation, or bnb 4-bit options (fp4, block size, ...)
};

class StreamingEqualsInMemory : public ::testing::TestWithParam<Case> {};

TEST_P(StreamingEqualsInMemory, ByteForByte) {
  const Case& c = GetParam();
  UnifiedQuantizationConfig config;
  config.backend = c.backend;
  config.bits = c.bits;
  config.chunk_size = c.chunk_size;
  const std::string extra = c.extra;
  if (extra == "skip") config.skip = {"down_proj"};
  if (extra == "layer_bits") config.layer_bits = {{"lm_head", 8}, {"model.layers.1", 16}};
  // bnb 4-bit variants; block 512/1024 over rows of 256 or 768 weights puts
  // chunk boundaries only every 2 or 4 rows (chunk_size is rounded down).
  if (extra.find("fp4") != std::string::npos) config.bnb_4bit_quant_type = "fp4";
  if (extra.find("plain_absmax") != std::string::npos) config.bnb_4bit_use_double_quant = false;
  if (extra.find("block512") != std::string::npos) config.group_size = 512;
  if (extra.find("block1024") != std::string::npos) config.group_size = 1024;
  TempDir dir;
  const fs::path model_dir = test::bundled_model();
  auto [model, quantizer] = quantize_model(test::bundled().model, config);
  quantizer.save_model(*model, dir / "memory");
  const Quantizer streamed = quantize_to_directory(model_dir, dir / "streamed", config);
  test::expect_same_files(dir / "memory", dir / "streamed");
  // The report agrees module by module.
  ASSERT_EQ(streamed.report().layers.size(), quantizer.report().layers.size());
  for (std::size_t i = 0; i < quantizer.report().layers.size(); ++i) {
    const auto& a = quantizer.report().layers[i];
    const auto& b = streamed.report().layers[i];
    EXPECT_EQ(a.path, b.path);
    EXPECT_EQ(a.scheme, b.scheme);
    EXPECT_EQ(a.bits, b.bits);
    EXPECT_EQ(a.parameters, b.parameters);
  }
  EXPECT_EQ(streamed.report().warnings, quantizer.report().warnings);
}

INSTANTIATE_TEST_SUITE_P(
    Backends, StreamingEqualsInMemory,
    ::testing::Values(Case{"mlx", 4, 256, ""}, Case{"mlx", 3, 7, ""}, Case{"mlx", 4, 1, "skip"},
                      Case{"mlx", 6, 100, "layer_bits"}, Case{"custom", 4, 5, ""},
                      Case{"custom", 8, 300, "skip"}, Case{"quanto", 4, 64, ""},
                      Case{"quanto", 8, 9, "skip"}, Case{"quanto", 2, 5, "layer_bits"},
                      Case{"quanto", 4, 7, "skip"}, Case{"bnb", 4, 33, "skip"},
                      Case{"bnb", 4, 1, ""}, Case{"bnb", 4, 100, "fp4"},
                      Case{"bnb", 4, 7, "plain_absmax"},
                      Case{"bnb", 4, 5, "fp4_plain_absmax_block512"},
                      Case{"bnb", 4, 33, "block1024"}, Case{"bnb", 4, 1, "block1024"},
                      Case{"bnb", 8, 17, ""}, Case{"bnb", 8, 1, "skip"}, Case{"bnb", 8, 300, ""}),
    [](const ::testing::TestParamInfo<Case>& test) {
      return std::string(test.param.backend) + std::to_string(test.param.bits) + "_chunk" +
             std::to_string(test.param.chunk_size) + (*test.param.extra ? "_" : "") +
             test.param.extra;
    });

struct CalibratedCase {
  const char* method;
  const char* backend;
  int bits;
  const char* extra;  // a layer_bits/skip variation
};

std::string calibrated_case_name(const ::testing::TestParamInfo<CalibratedCase>& test) {
  return std::string(test.param.method) + "_" + test.param.backend +
         std::to_string(test.param.bits) + (*test.param.extra ? "_" : "") + test.param.extra;
}

UnifiedQuantizationConfig calibrated_config(const CalibratedCase& c) {
  UnifiedQuantizationConfig config;
  config.method = c.method;
  config.backend = c.backend;
  config.bits = c.bits;
  config.chunk_size = 50;
  config.calibration_data = test::source_path("data/train.txt").string();
  config.calibration_samples = 2;
  config.calibration_ctx = 32;
  config.seed = 3;
  const std::string extra = c.extra;
  // A decoder linear left float and one on another grid: rounded or kept
  // inside a calibrated block.
  if (extra == "skip") config.skip = {"layers.1.mlp.down_proj"};
  if (extra == "layer_bits") config.layer_bits = {{"model.layers.0.self_attn.v_proj", 8}};
  return config;
}

// The streamed files (and the streamed in-memory model) equal the in-memory
// run's, and so do the reports, layer by layer.
void expect_calibrated_streaming_equals_in_memory(const fs::path& model_dir,
                                                  const UnifiedQuantizationConfig& config) {
  TempDir dir;
  auto [model, quantizer] =
      quantize_model(std::shared_ptr<const Model>(load_model(model_dir)), config);
  quantizer.save_model(*model, dir / "memory");
  const Quantizer streamed = quantize_to_directory(model_dir, dir / "streamed", config);
  test::expect_same_files(dir / "memory", dir / "streamed");
  auto streaming_config = config;
  streaming_config.memory_efficient = true;
  auto [streamed_model, streamed_in_memory] = quantize_model(model_dir, streaming_config);
  streamed_in_memory.save_model(*streamed_model, dir / "streamed_model");
  test::expect_same_files(dir / "memory", dir / "streamed_model");
  for (const Quantizer* other :
       std::initializer_list<const Quantizer*>{&streamed, &streamed_in_memory}) {
    const auto& expected = quantizer.report();
    const auto& got = other->report();
    ASSERT_EQ(got.layers.size(), expected.layers.size());
    for (std::size_t i = 0; i < expected.layers.size(); ++i) {
      const auto& a = expected.layers[i];
      const auto& b = got.layers[i];
      EXPECT_EQ(a.path, b.path);
      EXPECT_EQ(a.scheme, b.scheme) << a.path;
      EXPECT_EQ(a.bits, b.bits) << a.path;
      EXPECT_EQ(a.method, b.method) << a.path;
      EXPECT_EQ(a.note, b.note) << a.path;
      EXPECT_EQ(a.reconstruction_error, b.reconstruction_error) << a.path;
      EXPECT_EQ(a.bytes, b.bytes) << a.path;
    }
    EXPECT_EQ(got.not_calibrated, expected.not_calibrated);
    EXPECT_EQ(got.warnings, expected.warnings);
  }
  // Calibration ran: every decoder linear not skipped carries its measured error.
  std::size_t calibrated = 0;
  for (const auto& layer : streamed.report().layers) {
    if (layer.method == config.method) {
      ++calibrated;
      EXPECT_GE(layer.reconstruction_error, 0.0) << layer.path;
    }
  }
  const auto decoder_linears =
      static_cast<std::size_t>(7 * load_model_config(model_dir / "config.json").num_hidden_layers);
  EXPECT_EQ(calibrated, decoder_linears - config.skip.size());
}

class CalibratedStreamingEqualsInMemory : public ::testing::TestWithParam<CalibratedCase> {};

TEST_P(CalibratedStreamingEqualsInMemory, ByteForByte) {
  expect_calibrated_streaming_equals_in_memory(test::bundled_model(),
                                               calibrated_config(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(Methods, CalibratedStreamingEqualsInMemory,
                         ::testing::Values(CalibratedCase{"hqq", "mlx", 4, ""},
                                           CalibratedCase{"hqq", "quanto", 4, "skip"},
                                           CalibratedCase{"gptq", "mlx", 4, "skip"},
                                           CalibratedCase{"gptq", "quanto", 8, ""},
                                           CalibratedCase{"awq", "mlx", 3, "layer_bits"}),
                         calibrated_case_name);

TEST(CalibratedStreaming, SyntheticShardedCheckpoint) {
  TempDir dir;
  SyntheticCheckpointOptions options;
  options.preset = "tiny";
  options.layers = 3;
  options.max_shard_bytes = 1'000'000;  // blocks spread over several shards
  options.seed = 9;
  options.tokenizer_dir = test::bundled_model();
  write_synthetic_checkpoint(options, dir / "synth");
  expect_calibrated_streaming_equals_in_memory(dir / "synth",
                                               calibrated_config({"gptq", "mlx", 4, ""}));
}

TEST(StreamingQuantize, InMemoryModelEqualsLoadedThenQuantized) {
  UnifiedQuantizationConfig config;
  config.layer_bits = {{"embed", 8}};
  config.memory_efficient = true;
  auto [streamed_model, streamed] = quantize_model(test::bundled_model(), config);
  EXPECT_TRUE(streamed.config().memory_efficient);
  auto [model, quantizer] = quantize_model(test::bundled().model, config);
  TempDir dir;
  quantizer.save_model(*model, dir / "memory");
  streamed.save_model(*streamed_model, dir / "streamed");
  test::expect_same_files(dir / "memory", dir / "streamed");
  ASSERT_NE(streamed_model->tokenizer(), nullptr);
  const std::vector<std::int32_t> ids(test::bundled().val_ids.begin(),
                                      test::bundled().val_ids.begin() + 16);
  EXPECT_EQ(streamed_model->forward(ids), model->forward(ids));
}

// bnb 4-bit's chunked module on a matrix of an odd number of weights (the
// last byte holds one code) whose rows do not fill a block: chunks of whole
// blocks give the whole matrix's tensors, and a chunk off a block boundary is
// refused by name.
TEST(BnbChunkedModule, ChunksGiveTheWholeMatrixsTensors) {
  constexpr std::int64_t out = 37, in = 33;
  std::vector<float> values(static_cast<std::size_t>(out * in));
  for (std::size_t i = 0; i < values.size(); ++i) {
    values[i] = std::sin(0.37f * static_cast<float>(i)) * (1.0f + static_cast<float>(i % 7));
  }
  UnifiedQuantizationConfig config;
  config.group_size = 32;
  const Backend& backend = *find_backend("bnb");
  for (const bool double_quant : {true, false}) {
    config.bnb_4bit_use_double_quant = double_quant;
    std::string note;
    const auto whole =
        backend.quantize("m", FloatWeight(DType::F32, out, in, values.data()), 4, config, note);
    auto expected_encoder = backend.encoder(DType::F32, config);
    const auto expected = expected_encoder->module_tensors("m", *whole);
    auto chunked = backend.chunked_module("m", out, in, 4, config);
    ASSERT_NE(chunked, nullptr);
    EXPECT_EQ(chunked->row_multiple(), 32);
    EXPECT_EQ(chunked->codes_shape(), expected[0].shape);
    auto encoder = backend.encoder(DType::F32, config);
    std::vector<std::byte> codes;
    for (const std::int64_t first : {std::int64_t{0}, std::int64_t{32}}) {
      const std::int64_t count = std::min<std::int64_t>(32, out - first);
      const auto chunk = chunked->add_rows(
          FloatWeight(DType::F32, count, in, values.data() + static_cast<std::size_t>(first * in)));
      const auto bytes = encoder->module_tensors("m", *chunk).front().bytes();
      codes.insert(codes.end(), bytes.begin(), bytes.end());
    }
    const auto rest = chunked->finish(*encoder);
    ASSERT_EQ(rest.size() + 1, expected.size());
    EXPECT_TRUE(std::ranges::equal(codes, expected[0].bytes()));
    for (std::size_t i = 0; i < rest.size(); ++i) {
      EXPECT_EQ(rest[i].name, expected[i + 1].name);
      EXPECT_EQ(rest[i].dtype, expected[i + 1].dtype);
      EXPECT_EQ(rest[i].shape, expected[i + 1].shape);
      EXPECT_TRUE(std::ranges::equal(rest[i].bytes(), expected[i + 1].bytes())) << rest[i].name;
    }
    EXPECT_EQ(chunked->describe(), whole->describe());
    EXPECT_EQ(chunked->storage_bytes(), whole->storage_bytes());
    EXPECT_EQ(encoder->config({}).dump(), expected_encoder->config({}).dump());
  }
  auto chunked = backend.chunked_module("m", out, in, 4, config);
  chunked->add_rows(FloatWeight(DType::F32, 3, in, values.data()));
  EXPECT_NE(error_of([&] {
              chunked->add_rows(FloatWeight(DType::F32, 32, in, values.data()));
            }).find("module 'm': rows [3, 35) are not the next chunk on 32-weight block"),
            std::string::npos);
  EXPECT_EQ(backend.chunked_module("m", out, in, 8, config), nullptr);
}

TEST(StreamingQuantize, RefusesAQuantizedCheckpoint) {
  TempDir dir;
  UnifiedQuantizationConfig config;
  auto [model, quantizer] = quantize_model(test::bundled().model, config);
  quantizer.save_model(*model, dir / "mlx");
  const auto error = error_of([&] { quantize_to_directory(dir / "mlx", dir / "again", config); });
  EXPECT_NE(error.find("model.embed_tokens.weight"), std::string::npos) << error;
  EXPECT_NE(error.find("already quantized"), std::string::npos) << error;
  EXPECT_FALSE(fs::exists(dir / "again"));
}

TEST(MemoryBudget, LimitFromTheEnvironmentTriggersStreaming) {
  ASSERT_EQ(::setenv("UQ_MEMORY_LIMIT", "1MB", 1), 0);
  EXPECT_EQ(available_memory_bytes(), 1'000'000u);
  const auto reason = streaming_reason(test::bundled_model());
  ASSERT_TRUE(reason.has_value());
  EXPECT_NE(reason->find("streaming"), std::string::npos);
  UnifiedQuantizationConfig config;
  auto [model, quantizer] = quantize_model(test::bundled_model(), config);
  EXPECT_TRUE(quantizer.config().memory_efficient);
  EXPECT_EQ(quantizer.report().warnings.front(), *reason);
  ASSERT_EQ(::unsetenv("UQ_MEMORY_LIMIT"), 0);
  EXPECT_FALSE(streaming_reason(test::bundled_model()).has_value());  // 2 MB fit
}

TEST(LayoutOutput, ShardsByteCountsAndErrors) {
  TempDir dir;
  const std::vector<std::byte> bytes(100, std::byte{7});
  {
    LayoutOutput output(dir / "out", {{"format", "mlx"}}, {250, true});
    for (const char* name : {"a", "b", "c"}) {
      output.begin(name, DType::U8, {10, 10});
      output.append(std::span(bytes).first(30));
      output.append(std::span(bytes).subspan(30));
    }
    output.commit({{"k", 1}}, {{"extra.json", {{"x", 2}}}}, {});
  }
  const auto index = test::read_json(dir / "out/model.safetensors.index.json");
  EXPECT_EQ(index["weight_map"]["a"], "model-00001-of-00002.safetensors");
  EXPECT_EQ(index["weight_map"]["b"], "model-00001-of-00002.safetensors");
  EXPECT_EQ(index["weight_map"]["c"], "model-00002-of-00002.safetensors");
  EXPECT_EQ(index["metadata"]["total_size"], 300);
  const auto checkpoint = Checkpoint::open(dir / "out");
  EXPECT_EQ(checkpoint.tensor("c").nbytes, 100u);
  EXPECT_EQ(static_cast<int>(checkpoint.tensor("c").data[99]), 7);
  EXPECT_EQ(test::read_json(dir / "out/extra.json")["x"], 2);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir / "out"), fs::directory_iterator{}), 5);

  // Planned ahead: the same files, written without spooling.
  {
    LayoutOutput output(dir / "planned", {{"format", "mlx"}}, {250, true});
    for (const char* name : {"a", "b", "c"}) output.plan(name, DType::U8, {10, 10});
    EXPECT_NE(error_of([&] {
                output.begin("b", DType::U8, {10, 10});
              }).find("'b' is not the next planned tensor"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                output.begin("a", DType::U8, {10, 9});
              }).find("differs from its plan"),
              std::string::npos);
    for (const char* name : {"a", "b", "c"}) {
      output.begin(name, DType::U8, {10, 10});
      output.append(std::span(bytes).first(30));
      output.append(std::span(bytes).subspan(30));
    }
    output.commit({{"k", 1}}, {{"extra.json", {{"x", 2}}}}, {});
  }
  test::expect_same_files(dir / "out", dir / "planned");

  LayoutOutput short_tensor(dir / "short", {}, {});
  short_tensor.begin("a", DType::U8, {4});
  EXPECT_NE(error_of([&] { short_tensor.append(std::span(bytes).first(5)); }).find("tensor 'a'"),
            std::string::npos);
  short_tensor.append(std::span(bytes).first(3));
  EXPECT_NE(error_of([&] { short_tensor.begin("b", DType::U8, {1}); }).find("still lacks 1 bytes"),
            std::string::npos);
  EXPECT_NE(error_of([&] { short_tensor.commit({}, {}, {}); }).find("lacks 1 bytes"),
            std::string::npos);
}

TEST(SyntheticCheckpoint, ShardedLoadableAndDeterministic) {
  TempDir dir;
  SyntheticCheckpointOptions options;
  options.preset = "tiny";
  options.layers = 2;
  options.max_shard_bytes = 1'000'000;
  options.seed = 5;
  options.tokenizer_dir = test::bundled_model();
  const auto bytes = write_synthetic_checkpoint(options, dir / "a");
  const auto index = test::read_json(dir / "a/model.safetensors.index.json");
  EXPECT_EQ(index["metadata"]["total_size"], bytes);
  // 2 MB embedding, ~1.6 MB per layer, 2 MB lm_head: six shards of at most 1 MB or one tensor.
  EXPECT_EQ(index["weight_map"]["model.embed_tokens.weight"], "model-00001-of-00006.safetensors");
  EXPECT_EQ(index["weight_map"]["model.layers.0.mlp.gate_proj.weight"],
            "model-00002-of-00006.safetensors");
  EXPECT_EQ(index["weight_map"]["lm_head.weight"], "model-00006-of-00006.safetensors");
  for (const auto& entry : fs::directory_iterator(dir / "a")) {
    if (entry.path().extension() == ".safetensors") {
      EXPECT_TRUE(entry.file_size() <= 1'000'000 + 4096 || entry.file_size() > 2'000'000)
          << entry.path();
    }
  }
  const auto model = load_model(dir / "a");
  EXPECT_EQ(model->config().num_hidden_layers, 2);
  EXPECT_EQ(model->config().dtype, DType::BF16);
  // Uniform weights with standard deviation 0.02; norms are ones.
  std::vector<float> row(256);
  double sum = 0, squares = 0;
  for (std::int64_t r = 0; r < 64; ++r) {
    model->layers()[1].q_proj->dequantize_rows(r, 1, row.data());
    for (const float v : row) {
      sum += v;
      squares += double(v) * v;
      ASSERT_LE(std::abs(v), 0.0347f);
    }
  }
  const double n = 64.0 * 256.0;
  EXPECT_NEAR(sum / n, 0.0, 0.001);
  EXPECT_NEAR(std::sqrt(squares / n), 0.02, 0.0005);
  EXPECT_EQ(model->layers()[0].input_norm, std::vector<float>(256, 1.0f));
  const auto logits = model->forward(std::vector<std::int32_t>{1, 2, 3});
  for (const float v : logits) ASSERT_TRUE(std::isfinite(v));
  // Same seed, other thread count: the same bytes; another seed: others.
  const int threads = num_threads();
  set_num_threads(1);
  write_synthetic_checkpoint(options, dir / "b");
  set_num_threads(threads);
  test::expect_same_files(dir / "a", dir / "b");
  options.seed = 6;
  write_synthetic_checkpoint(options, dir / "c");
  EXPECT_NE(read_text(dir / "a/model-00002-of-00006.safetensors"),
            read_text(dir / "c/model-00002-of-00006.safetensors"));
  options.preset = "llama4";
  EXPECT_NE(error_of([&] {
              write_synthetic_checkpoint(options, dir / "d");
            }).find("unknown preset 'llama4'"),
            std::string::npos);
}

}  // namespace
}  // namespace uq
