// The bad-input matrix of docs/RELIABILITY.md, through the `uq` command: every
// case exits with status 1 (2 for command-line syntax), prints exactly the one
// stderr line listed here ("error: ..." naming the culprit) and dies from no
// signal, also in the sanitizer builds. Paths print as <dir> (the case's
// temporary directory), <model> (the bundled model) and <repo>.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/formats/gguf_reader.hpp"
#include "support/test_support.hpp"

namespace uq {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& path, const std::string& contents) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
}

// <dir>/model: the bundled model's files, linked, except those a case rewrites.
fs::path model_copy(const TempDir& dir) {
  const fs::path model = dir / "model";
  fs::create_directories(model);
  for (const char* name : {"config.json", "tokenizer.json", "model.safetensors"}) {
    fs::create_symlink(test::bundled_model() / name, model / name);
  }
  return model;
}

void replace_file(const fs::path& path, const std::string& contents) {
  fs::remove(path);
  write_file(path, contents);
}

void edit_config(const fs::path& model, const std::function<void(nlohmann::json&)>& edit) {
  auto config = nlohmann::json::parse(read_file(model / "config.json"));
  edit(config);
  replace_file(model / "config.json", config.dump());
}

void edit_tokenizer(const fs::path& model, const std::function<void(nlohmann::json&)>& edit) {
  auto tokenizer = nlohmann::json::parse(read_file(model / "tokenizer.json"));
  edit(tokenizer);
  replace_file(model / "tokenizer.json", tokenizer.dump());
}

// A .safetensors file: 8-byte length `declared_length`, `header`, zero data bytes.
std::string safetensors_bytes(const std::string& header, std::size_t data_bytes,
                              std::uint64_t declared_length) {
  std::string bytes;
  for (int i = 0; i < 8; ++i) {
    bytes.push_back(static_cast<char>((declared_length >> (8 * i)) & 0xff));
  }
  return bytes + header + std::string(data_bytes, '\0');
}
std::string safetensors_bytes(const std::string& header, std::size_t data_bytes) {
  return safetensors_bytes(header, data_bytes, header.size());
}

// The bundled model.safetensors with its header rewritten by `edit` (data kept).
std::string edited_checkpoint(const std::function<void(nlohmann::json&)>& edit) {
  const std::string original = read_file(test::bundled_model() / "model.safetensors");
  std::uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(original[i]);
  auto header = nlohmann::json::parse(original.substr(8, length));
  edit(header);
  return safetensors_bytes(header.dump(), 0) + original.substr(8 + length);
}

// `file` (a .safetensors) with the first element of `tensor` (F32, F16 or BF16) a NaN.
std::string with_nan_weight(const fs::path& file, const std::string& tensor) {
  std::string bytes = read_file(file);
  std::uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(bytes[i]);
  const auto header = nlohmann::json::parse(bytes.substr(8, length));
  const auto& entry = header.at(tensor);
  const auto begin = 8 + length + entry.at("data_offsets").at(0).get<std::size_t>();
  const auto dtype = entry.at("dtype").get<std::string>();
  // Little-endian quiet NaNs: F32 0x7fc00000, F16 0x7e00, BF16 0x7fc0.
  if (dtype != "F32" && dtype != "F16" && dtype != "BF16") throw std::runtime_error(dtype);
  const std::string nan = dtype == "F32"   ? std::string("\x00\x00\xc0\x7f", 4)
                          : dtype == "F16" ? std::string("\x00\x7e", 2)
                                           : std::string("\xc0\x7f", 2);
  bytes.replace(begin, nan.size(), nan);
  return bytes;
}

std::string val_txt() {
  return test::source_path("data/val.txt").string();
}

// The bundled model quantized by `uq quantize` into <dir>/q.
fs::path quantized_copy(const TempDir& dir, const std::string& backend, const std::string& bits) {
  const auto out = dir / "q";
  const auto result = test::run_uq({"quantize", test::bundled_model().string(), "-o", out.string(),
                                    "--backend", backend, "--bits", bits, "--quiet"});
  if (result.exit_code != 0) throw std::runtime_error("uq quantize failed: " + result.err);
  return out;
}

// Renames a tensor in a safetensors header to a name of the same length, so
// that nothing else in the file moves (and in the index, when there is one).
void rename_tensor(const fs::path& file, const std::string& from, const std::string& to) {
  std::string bytes = read_file(file);
  const auto at = bytes.find("\"" + from + "\"");
  if (from.size() != to.size() || at == std::string::npos) throw std::runtime_error("rename");
  bytes.replace(at + 1, from.size(), to);
  replace_file(file, bytes);
  const auto index = file.parent_path() / "model.safetensors.index.json";
  if (fs::exists(index)) {
    auto json = nlohmann::json::parse(read_file(index));
    auto& map = json.at("weight_map");
    map[to] = map.at(from);
    map.erase(from);
    replace_file(index, json.dump());
  }
}

// The bundled model exported by `uq export --format gguf --type <type>` to <dir>/m.gguf.
fs::path gguf_copy(const TempDir& dir, const std::string& type) {
  const auto out = dir / "m.gguf";
  const auto result = test::run_uq({"export", test::bundled_model().string(), "--format", "gguf",
                                    "--type", type, "-o", out.string(), "--quiet"});
  if (result.exit_code != 0) throw std::runtime_error("uq export failed: " + result.err);
  return out;
}

// Where `tensor`'s data begins in the GGUF file `bytes`.
std::size_t gguf_tensor_offset(const std::string& bytes, const std::string& tensor) {
  const auto file = GgufFile::parse(
      {reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()}, "gguf_tensor_offset");
  const auto data = file->tensor_data(file->tensor(tensor));
  return static_cast<std::size_t>(data.data() - reinterpret_cast<const std::byte*>(bytes.data()));
}

std::vector<std::string> eval(const fs::path& model, const std::string& data = val_txt(),
                              const std::string& ctx = "32") {
  return {"eval", model.string(), "--data", data, "--ctx", ctx};
}

struct BadInput {
  std::string name;
  // Prepares the bad input under `dir` and returns the `uq` arguments.
  std::function<std::vector<std::string>(const TempDir& dir)> setup;
  std::string error;  // the whole stderr line, without its newline
  int exit_code = 1;
};

const std::vector<BadInput>& cases() {
  static const std::vector<BadInput> all = {
      // ---- The model directory.
      {"model directory missing", [](const TempDir& dir) { return eval(dir / "nowhere"); },
       "error: <dir>/nowhere: model directory not found"},
      {"config.json missing",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         fs::remove(model / "config.json");
         return eval(model);
       },
       "error: <dir>/model/config.json: file not found"},
      {"tokenizer.json missing",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         fs::remove(model / "tokenizer.json");
         return eval(model);
       },
       "error: <dir>/model/tokenizer.json: file not found"},
      {"no weights file",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         fs::remove(model / "model.safetensors");
         return eval(model);
       },
       "error: <dir>/model: no model.safetensors, model.safetensors.index.json or other "
       ".safetensors file"},
      // ---- config.json.
      {"config.json not JSON",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         replace_file(model / "config.json", "{\"model_type\": \"llama\",");
         return eval(model);
       },
       "error: <dir>/model/config.json: invalid JSON: [json.exception.parse_error.101] parse "
       "error at line 1, column 24: syntax error while parsing object key - unexpected "
       "end of input; expected string literal"},
      {"unknown model_type",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         edit_config(model, [](nlohmann::json& config) { config["model_type"] = "gpt2"; });
         return eval(model);
       },
       "error: <dir>/model/config.json: unsupported model_type 'gpt2' (supported: llama, "
       "mistral, qwen2)"},
      {"config lacks hidden_size",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         edit_config(model, [](nlohmann::json& config) { config.erase("hidden_size"); });
         return eval(model);
       },
       "error: <dir>/model/config.json: missing required field 'hidden_size'"},
      {"config field of the wrong type",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         edit_config(model, [](nlohmann::json& config) { config["vocab_size"] = "4096"; });
         return eval(model);
       },
       "error: <dir>/model/config.json: field 'vocab_size' must be an integer"},
      {"kv heads do not divide heads",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         edit_config(model, [](nlohmann::json& config) { config["num_key_value_heads"] = 3; });
         return eval(model);
       },
       "error: <dir>/model/config.json: field 'num_key_value_heads' (3) must divide "
       "num_attention_heads (8)"},
      {"config claims 10^15 layers",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         edit_config(model, [](nlohmann::json& config) {
           config["num_hidden_layers"] = 1'000'000'000'000'000;
         });
         return eval(model);
       },
       "error: <dir>/model/config.json: field 'num_hidden_layers' is 1000000000000000, "
       "more than the limit of 65536"},
      {"rms_norm_eps negative",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         edit_config(model, [](nlohmann::json& config) { config["rms_norm_eps"] = -1e-5; });
         return eval(model);
       },
       "error: <dir>/model/config.json: field 'rms_norm_eps' must be positive, got -1e-05"},
      {"config has more layers than the weights",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         edit_config(model, [](nlohmann::json& config) { config["num_hidden_layers"] = 5; });
         return eval(model);
       },
       "error: <dir>/model: no tensor 'model.layers.4.self_attn.q_proj.weight'"},
      {"config vocab_size disagrees with the embedding",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         edit_config(model, [](nlohmann::json& config) { config["vocab_size"] = 4000; });
         return eval(model);
       },
       "error: module 'model.embed_tokens': weight has shape [4096, 256], expected [4000, "
       "256]"},
      // ---- model.safetensors.
      {"weights truncated",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         const std::string bytes = read_file(model / "model.safetensors");
         replace_file(model / "model.safetensors", bytes.substr(0, bytes.size() / 2));
         return eval(model);
       },
       "error: <dir>/model/model.safetensors: tensor 'model.layers.0.mlp.up_proj.weight': data "
       "[4981248, 5374464) lies outside the 5243088-byte data section"},
      {"weights file shorter than its length field",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         replace_file(model / "model.safetensors", "abc");
         return eval(model);
       },
       "error: <dir>/model/model.safetensors: 3-byte file is too short to hold the 8-byte "
       "header length"},
      {"header length runs past the end",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         replace_file(model / "model.safetensors", safetensors_bytes("{}", 0, 4096));
         return eval(model);
       },
       "error: <dir>/model/model.safetensors: header length 4096 runs past the end of the "
       "10-byte file"},
      {"header not JSON",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         replace_file(model / "model.safetensors", safetensors_bytes("{\"a\":[1,", 0));
         return eval(model);
       },
       "error: <dir>/model/model.safetensors: header is not valid JSON: "
       "[json.exception.parse_error.101] parse error at line 1, column 9: syntax error while "
       "parsing value - unexpected end of input; expected '[', '{', or a literal"},
      {"header claims 10^15 elements",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         replace_file(model / "model.safetensors",
                      safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1000000,1000000000],)"
                                        R"("data_offsets":[0,4000000000000000]}})",
                                        16));
         return eval(model);
       },
       "error: <dir>/model/model.safetensors: tensor 'w': data [0, 4000000000000000) lies "
       "outside the 16-byte data section"},
      {"negative dimension",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         replace_file(model / "model.safetensors",
                      safetensors_bytes(
                          R"({"w":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,16]}})", 16));
         return eval(model);
       },
       "error: <dir>/model/model.safetensors: tensor 'w': shape dimension is negative (-1)"},
      {"shape overflows the byte count",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         replace_file(model / "model.safetensors",
                      safetensors_bytes(R"({"w":{"dtype":"F32","shape":[4611686018427387904,)"
                                        R"(4],"data_offsets":[0,16]}})",
                                        16));
         return eval(model);
       },
       "error: <dir>/model/model.safetensors: tensor 'w': shape [4611686018427387904, 4] of "
       "F32 overflows the byte count"},
      {"unknown dtype",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         replace_file(
             model / "model.safetensors",
             safetensors_bytes(R"({"w":{"dtype":"Q4","shape":[4],"data_offsets":[0,2]}})", 2));
         return eval(model);
       },
       "error: <dir>/model/model.safetensors: tensor 'w': unknown dtype 'Q4'"},
      {"dtype and shape disagree with the byte range",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         replace_file(model / "model.safetensors",
                      safetensors_bytes(
                          R"({"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,16]}})", 16));
         return eval(model);
       },
       "error: <dir>/model/model.safetensors: tensor 'w': data [0, 16) holds 16 bytes but "
       "BF16 [2, 3] needs 12"},
      {"overlapping tensors",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         replace_file(model / "model.safetensors",
                      safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                        12));
         return eval(model);
       },
       "error: <dir>/model/model.safetensors: tensor 'b': data [4, 12) overlaps tensor 'a' "
       "(which ends at 8)"},
      {"weight of an integer dtype",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         replace_file(model / "model.safetensors", edited_checkpoint([](nlohmann::json& header) {
                        auto& entry = header["model.norm.weight"];
                        entry["dtype"] = "I16";
                      }));
         return eval(model);
       },
       "error: tensor 'model.norm.weight': dtype I16 is not a float type"},
      {"NaN weights",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         replace_file(model / "model.safetensors",
                      with_nan_weight(model / "model.safetensors", "model.norm.weight"));
         write_file(dir / "short.txt", read_file(val_txt()).substr(0, 400));
         return eval(model, (dir / "short.txt").string());
       },
       "error: <dir>/model: the model's logits are not finite (NaN or infinite weights?)"},
      {"NaN weights while generating",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         replace_file(model / "model.safetensors",
                      with_nan_weight(model / "model.safetensors", "model.norm.weight"));
         return std::vector<std::string>{"generate", model.string(), "-p", "Hello", "--json"};
       },
       "error: sampling: logit 0 is nan (NaN or infinite weights? --check-tensors names the "
       "tensor)"},
      {"NaN weights before generating",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         replace_file(model / "model.safetensors",
                      with_nan_weight(model / "model.safetensors", "model.norm.weight"));
         return std::vector<std::string>{"generate", model.string(), "-p", "Hello",
                                         "--check-tensors"};
       },
       "error: <dir>/model/model.safetensors: tensor 'model.norm.weight' holds nan at element 0"},
      {"NaN scale of a quantized layout",
       [](const TempDir& dir) {
         const auto model = quantized_copy(dir, "mlx", "4");
         const auto file = model / "model.safetensors";
         replace_file(file, with_nan_weight(file, "model.layers.1.mlp.up_proj.scales"));
         return std::vector<std::string>{
             "logits",         model.string(), "--ids",
             "1,2,3",          "-o",           (dir / "out.safetensors").string(),
             "--check-tensors"};
       },
       "error: <dir>/q/model.safetensors: tensor 'model.layers.1.mlp.up_proj.scales' holds nan at "
       "element 0"},
      // ---- Quantized layouts.
      {"mlx scales missing",
       [](const TempDir& dir) {
         const auto model = quantized_copy(dir, "mlx", "4");
         rename_tensor(model / "model.safetensors", "model.layers.0.mlp.up_proj.scales",
                       "model.layers.0.mlp.up_proj.scalez");
         return eval(model);
       },
       "error: tensor 'model.layers.0.mlp.up_proj.scales' is missing: config.json declares "
       "'model.layers.0.mlp.up_proj' quantized (4 bits, group size 64)"},
      {"mlx bits disagree with the packed weights",
       [](const TempDir& dir) {
         const auto model = quantized_copy(dir, "mlx", "4");
         edit_config(model, [](nlohmann::json& config) {
           config["quantization"]["bits"] = 3;
           config["quantization_config"]["bits"] = 3;
         });
         return eval(model);
       },
       "error: tensor 'model.embed_tokens.weight': shapes [4096, 32] (codes) and [4096, 4] "
       "(scales) do not fit 3 bits with group size 64"},
      {"mlx group size the format lacks",
       [](const TempDir& dir) {
         const auto model = quantized_copy(dir, "mlx", "4");
         edit_config(model, [](nlohmann::json& config) {
           config["quantization"]["group_size"] = 48;
           config["quantization_config"]["group_size"] = 48;
         });
         return eval(model);
       },
       "error: tensor 'model.embed_tokens.weight': shapes [4096, 32] (codes) and [4096, 4] "
       "(scales) do not fit 4 bits with group size 48"},
      {"quanto scale missing",
       [](const TempDir& dir) {
         const auto model = quantized_copy(dir, "quanto", "8");
         rename_tensor(model / "model.safetensors", "model.layers.2.self_attn.k_proj.weight._scale",
                       "model.layers.2.self_attn.k_proj.weight._scalf");
         return eval(model);
       },
       "error: <dir>/q: no tensor 'model.layers.2.self_attn.k_proj.weight._scale'"},
      {"bnb absmax missing",
       [](const TempDir& dir) {
         const auto model = quantized_copy(dir, "bnb", "4");
         rename_tensor(model / "model.safetensors", "model.layers.1.self_attn.o_proj.weight.absmax",
                       "model.layers.1.self_attn.o_proj.weight.absmaz");
         return eval(model);
       },
       "error: <dir>/q: no tensor 'model.layers.1.self_attn.o_proj.weight.absmax'"},
      {"quanto map declares another weights qtype",
       [](const TempDir& dir) {
         const auto model = quantized_copy(dir, "quanto", "4");
         auto map = nlohmann::json::parse(read_file(model / "quantization_map.json"));
         map["model.layers.0.mlp.down_proj"]["weights"] = "qint8";
         write_file(model / "quantization_map.json", map.dump());
         return eval(model);
       },
       "error: <dir>/q/quantization_map.json: 'model.layers.0.mlp.down_proj' declares weights "
       "qint8, but its tensors hold qint4"},
      {"quanto map lacks a quantized module",
       [](const TempDir& dir) {
         const auto model = quantized_copy(dir, "quanto", "8");
         auto map = nlohmann::json::parse(read_file(model / "quantization_map.json"));
         map.erase("model.layers.1.self_attn.q_proj");
         write_file(model / "quantization_map.json", map.dump());
         return eval(model);
       },
       "error: <dir>/q/quantization_map.json: no entry for 'model.layers.1.self_attn.q_proj', "
       "whose "
       "tensors hold qint8"},
      // ---- Exports into another layout.
      {"export of a layout the target cannot hold",
       [](const TempDir& dir) {
         const auto model = quantized_copy(dir, "mlx", "4");
         return std::vector<std::string>{"export", model.string(), "--format",
                                         "quanto", "-o",           (dir / "out").string()};
       },
       "error: model.embed_tokens: optimum-quanto quantizes Linear layers only, and this embedding "
       "is affine b4 g64 (quantize the float model with --backend quanto instead)"},
      {"export of a float model into a layout",
       [](const TempDir& dir) {
         return std::vector<std::string>{"export",   test::bundled_model().string(),
                                         "--format", "mlx",
                                         "-o",       (dir / "out").string()};
       },
       "error: <model>: no quantized weights to export; quantize the float model instead (uq "
       "quantize MODEL --backend mlx -o OUT)"},
      {"export with re-quantizing options",
       [](const TempDir& dir) {
         const auto model = quantized_copy(dir, "quanto", "4");
         return std::vector<std::string>{
             "export", model.string(),        "--format", "mlx", "--bits", "8",
             "-o",     (dir / "out").string()};
       },
       "error: option --bits is for --adapter DIR --fuse, not --format (which keeps the weights as "
       "they are; re-quantize with uq quantize)"},
      {"export onto the model itself",
       [](const TempDir& dir) {
         const auto model = quantized_copy(dir, "quanto", "4");
         return std::vector<std::string>{"export", model.string(), "--format",
                                         "mlx",    "-o",           model.string()};
       },
       "error: option -o: '<dir>/q' is MODEL itself; export to another directory"},
      {"tied embeddings with a quantized head",
       [](const TempDir& dir) {
         const auto model = quantized_copy(dir, "quanto", "4");
         auto config = nlohmann::json::parse(read_file(model / "config.json"));
         config["tie_word_embeddings"] = true;
         write_file(model / "config.json", config.dump());
         return eval(model);
       },
       "error: tensor 'lm_head.weight._scale': lm_head is stored quantized but tie_word_embeddings "
       "is true (the head would be the embedding); untie it in config.json or store it float"},
      {"export format unknown",
       [](const TempDir& dir) {
         return std::vector<std::string>{"export",   test::bundled_model().string(),
                                         "--format", "onnx",
                                         "-o",       (dir / "out").string()};
       },
       "error: option --format: 'onnx' is not supported (gguf, mlx, quanto, bnb, custom)"},
      // ---- GGUF files.
      {"GGUF truncated",
       [](const TempDir& dir) {
         const auto model = gguf_copy(dir, "Q8_0");
         write_file(model, read_file(model).substr(0, 100000));
         return eval(model);
       },
       "error: <dir>/m.gguf: metadata 'tokenizer.ggml.merges': array of 3839 string elements "
       "cannot fit in the 25180 bytes left in the file"},
      {"GGUF of an unsupported version",
       [](const TempDir& dir) {
         const auto model = gguf_copy(dir, "Q8_0");
         std::string bytes = read_file(model);
         bytes[4] = 99;  // the u32 version after the magic
         write_file(model, bytes);
         return eval(model);
       },
       "error: <dir>/m.gguf: GGUF version 99 is not supported (2 and 3 are)"},
      {"GGUF export of NaN weights",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         replace_file(
             model / "model.safetensors",
             with_nan_weight(model / "model.safetensors", "model.layers.0.mlp.up_proj.weight"));
         return std::vector<std::string>{
             "export", model.string(), "--format", "gguf",
             "--type", "Q4_0",         "-o",       (dir / "m.gguf").string()};
       },
       "error: GGUF export: tensor 'blk.0.ffn_up.weight': non-finite value nan at row 0, column 0"},
      {"GGUF block scale NaN",
       [](const TempDir& dir) {
         const auto model = gguf_copy(dir, "Q8_0");
         std::string bytes = read_file(model);
         // A Q8_0 block starts with its f16 scale: 0x7e00 is NaN, so all 32 values are.
         const auto at = gguf_tensor_offset(bytes, "blk.1.ffn_up.weight");
         bytes[at] = '\x00';
         bytes[at + 1] = '\x7e';
         write_file(model, bytes);
         return std::vector<std::string>{"generate", model.string(), "-p", "Hello",
                                         "--check-tensors"};
       },
       "error: <dir>/m.gguf: tensor 'blk.1.ffn_up.weight' holds nan at element 0"},
      // ---- Sharded checkpoints.
      {"index shard outside the directory",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         fs::remove(model / "model.safetensors");
         fs::copy_file(test::bundled_model() / "model.safetensors", dir / "elsewhere.safetensors");
         write_file(model / "model.safetensors.index.json",
                    R"({"weight_map":{"model.norm.weight":"../elsewhere.safetensors"}})");
         return eval(model);
       },
       "error: <dir>/model/model.safetensors.index.json: shard '../elsewhere.safetensors' "
       "leaves the directory through '..'"},
      {"index names a missing shard",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         fs::remove(model / "model.safetensors");
         write_file(model / "model.safetensors.index.json",
                    R"({"weight_map":{"model.norm.weight":"model-00001-of-00002.safetensors"}})");
         return eval(model);
       },
       "error: <dir>/model/model.safetensors.index.json: shard "
       "'model-00001-of-00002.safetensors' does not exist (or is not a file)"},
      {"index not JSON",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         write_file(model / "model.safetensors.index.json", "{\"weight_map\": ");
         return eval(model);
       },
       "error: <dir>/model/model.safetensors.index.json: not valid JSON: "
       "[json.exception.parse_error.101] parse error at line 1, column 16: syntax error while "
       "parsing value - unexpected end of input; expected '[', '{', or a literal"},
      // ---- tokenizer.json.
      {"tokenizer.json not JSON",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         replace_file(model / "tokenizer.json", "{\"model\": {");
         return eval(model);
       },
       "error: <dir>/model/tokenizer.json: invalid tokenizer JSON: "
       "[json.exception.parse_error.101] parse error at line 1, column 12: syntax error while "
       "parsing object key - unexpected end of input; expected string literal"},
      {"tokenizer of an unsupported model type",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         edit_tokenizer(
             model, [](nlohmann::json& tokenizer) { tokenizer["model"]["type"] = "WordPiece"; });
         return eval(model);
       },
       "error: <dir>/model/tokenizer.json: unsupported model type 'WordPiece' (supported: "
       "BPE)"},
      {"tokenizer id far beyond the vocabulary",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         edit_tokenizer(model, [](nlohmann::json& tokenizer) {
           tokenizer["model"]["vocab"]["<huge>"] = 2147483647;
         });
         return eval(model);
       },
       "error: <dir>/model/tokenizer.json: model.vocab: largest id 2147483647 leaves more than "
       "65536 of the 2147483648 ids unused (4097 tokens)"},
      {"tokenizer id not an integer",
       [](const TempDir& dir) {
         const auto model = model_copy(dir);
         edit_tokenizer(model, [](nlohmann::json& tokenizer) {
           tokenizer["model"]["vocab"]["<float>"] = 1.5;
         });
         return eval(model);
       },
       "error: <dir>/model/tokenizer.json: model.vocab id: expected an integer, got 1.5"},
      // ---- Data and options.
      {"data file missing",
       [](const TempDir& dir) {
         return eval(test::bundled_model(), (dir / "absent.txt").string());
       },
       "error: option --data: cannot open '<dir>/absent.txt'"},
      {"data file empty",
       [](const TempDir& dir) {
         write_file(dir / "empty.txt", "");
         return eval(test::bundled_model(), (dir / "empty.txt").string());
       },
       "error: option --data: '<dir>/empty.txt' is empty"},
      {"data not UTF-8",
       [](const TempDir& dir) {
         write_file(dir / "latin1.txt", "caf\xe9 au lait, " + std::string(200, 'x'));
         return eval(test::bundled_model(), (dir / "latin1.txt").string());
       },
       "error: option --data: '<dir>/latin1.txt' is not valid UTF-8 (byte 3)"},
      {"ctx larger than the model's context",
       [](const TempDir&) { return eval(test::bundled_model(), val_txt(), "100000"); },
       "error: option --ctx 100000 exceeds the model's max_position_embeddings (1024)"},
      {"ctx not positive",
       [](const TempDir&) { return eval(test::bundled_model(), val_txt(), "0"); },
       "error: option --ctx must be at least 2, got 0"},
      {"prompt not UTF-8",
       [](const TempDir&) {
         return std::vector<std::string>{"generate", test::bundled_model().string(), "-p",
                                         "bad \xff byte"};
       },
       "error: option -p: the prompt is not valid UTF-8 (byte 4)"},
      {"output directory missing",
       [](const TempDir& dir) {
         return std::vector<std::string>{"logits", test::bundled_model().string(),
                                         "--ids",  "1,2",
                                         "-o",     (dir / "no/such/dir/out.safetensors").string()};
       },
       "error: <dir>/no/such/dir/out.safetensors: cannot create"},
      {"output directory unwritable",
       [](const TempDir&) {
         // sysfs refuses new files even to root.
         return std::vector<std::string>{"logits", test::bundled_model().string(), "--ids", "1,2",
                                         "-o",     "/sys/out.safetensors"};
       },
       "error: /sys/out.safetensors: cannot create"},
      {"token id outside the vocabulary",
       [](const TempDir& dir) {
         return std::vector<std::string>{"logits", test::bundled_model().string(),
                                         "--ids",  "1,4096",
                                         "-o",     (dir / "out.safetensors").string()};
       },
       "error: token id 4096 outside the vocabulary [0, 4096)"},
      {"unknown option",
       [](const TempDir&) {
         return std::vector<std::string>{"eval", test::bundled_model().string(), "--data",
                                         val_txt(), "--bogus"};
       },
       "error: The following argument was not expected: --bogus", 2},
  };
  return all;
}

// Replaces every occurrence of `from` in `text` with `to`.
std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at)) {
    text.replace(at, from.size(), to);
    at += to.size();
  }
  return text;
}

class BadInputTest : public ::testing::TestWithParam<std::size_t> {};

TEST_P(BadInputTest, FailsWithOneErrorLine) {
  const BadInput& bad = cases()[GetParam()];
  TempDir dir;
  const auto result = test::run_uq(bad.setup(dir));
  EXPECT_LT(result.exit_code, 128) << "killed by signal " << result.exit_code - 128;
  EXPECT_EQ(result.exit_code, bad.exit_code);
  std::string line = replace_all(result.err, dir.path().string(), "<dir>");
  line = replace_all(line, test::bundled_model().string(), "<model>");
  line = replace_all(line, test::source_path("").string(), "<repo>/");
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  line.pop_back();
  EXPECT_EQ(line.find('\n'), std::string::npos) << "more than one line:\n" << result.err;
  // Messages ending in a system reason are compared up to it (the reason's wording varies).
  if (bad.error.ends_with(": cannot create")) {
    EXPECT_EQ(line.substr(0, bad.error.size()), bad.error);
  } else {
    EXPECT_EQ(line, bad.error);
  }
  EXPECT_TRUE(result.out.empty()) << result.out;
}

INSTANTIATE_TEST_SUITE_P(Matrix, BadInputTest, ::testing::Range<std::size_t>(0, cases().size()),
                         [](const auto& param_info) {
                           std::string name;
                           for (const char c : cases()[param_info.param].name) {
                             name.push_back(std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
                           }
                           return name;
                         });

}  // namespace
}  // namespace uq
