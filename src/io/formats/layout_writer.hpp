#pragma once
// Writing a quantized model directory, shared by every layout and by both the
// in-memory save and streaming quantization: a LayoutEncoder says which
// tensors each module becomes and which JSON files describe them; a
// LayoutOutput writes those tensors as they come (one at a time, bounded
// memory) into shards, then config.json, the JSON files and the source
// model's tokenizer files, all staged and committed atomically.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.hpp"
#include "io/staged_directory.hpp"

namespace uq {

class Model;
class SafetensorsWriter;
class Weight;

// A tensor to write: borrowed bytes (owned by a weight that outlives the
// write) or bytes it owns.
struct LayoutTensor {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> borrowed;
  std::vector<std::byte> owned;

  std::span<const std::byte> bytes() const { return owned.empty() ? borrowed : owned; }
};

// How the weights are split into files.
struct ShardPolicy {
  std::uint64_t max_shard_bytes = 0;  // 0: everything in one model.safetensors
  bool write_index = false;           // model.safetensors.index.json, even for one shard
};

// One layout's file format.
class LayoutEncoder {
 public:
  virtual ~LayoutEncoder() = default;
  // The tensors of one module (float or quantized weight) in file order.
  // Streaming calls it once per row chunk of a module: what it records about
  // the module (config entries) must be the same for every chunk.
  virtual std::vector<LayoutTensor> module_tensors(const std::string& path,
                                                   const Weight& weight) = 0;
  // config.json from the source model's, once every module has been seen;
  // throws uq::Error for a combination the layout cannot hold.
  virtual nlohmann::json config(const nlohmann::json& source_config) const = 0;
  // Further JSON files (file name -> contents), once every module has been seen.
  virtual std::map<std::string, nlohmann::json> json_files() const { return {}; }
  // The safetensors metadata of each shard.
  virtual std::map<std::string, std::string> metadata() const = 0;
  virtual ShardPolicy shard_policy() const { return {}; }
};

// A vector parameter (norm weight, bias) converted to the model dtype.
LayoutTensor vector_tensor(std::string name, std::span<const float> values, DType dtype);

// Writes tensors in the order given into a staged directory, in one of two
// ways. Planned: plan() declares every tensor first, so each shard's header is
// known and the bytes go straight into the shard files. Unplanned: each
// tensor's bytes go to a spool file as they arrive (the header, which comes
// first in a safetensors file, is known only once every tensor is) and
// commit() writes each shard as header + spooled data. Memory stays bounded by
// the caller's chunks either way; the files are the same.
class LayoutOutput {
 public:
  LayoutOutput(const std::filesystem::path& dir, std::map<std::string, std::string> metadata,
               ShardPolicy policy);
  ~LayoutOutput();
  LayoutOutput(const LayoutOutput&) = delete;
  LayoutOutput& operator=(const LayoutOutput&) = delete;

  // Declares the next tensor ahead of its data (before any begin()).
  void plan(std::string name, DType dtype, std::vector<std::int64_t> shape);
  // Starts a tensor (the next planned one, when planned); append() then
  // delivers exactly its bytes, in any chunks.
  void begin(std::string name, DType dtype, std::vector<std::int64_t> shape);
  void append(std::span<const std::byte> bytes);
  void add(const LayoutTensor& tensor);
  // Writes the shards, config.json, `json_files` and the tokenizer files found
  // in `source_dir` (if any), then moves the directory into place.
  void commit(const nlohmann::json& config, const std::map<std::string, nlohmann::json>& json_files,
              const std::filesystem::path& source_dir);

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<std::int64_t> shape;
    std::uint64_t nbytes;
    std::size_t shard;
  };
  std::size_t place(std::uint64_t nbytes);  // the shard of the next tensor
  void open_planned_shard(std::size_t shard);
  void write_spooled_shard(std::size_t shard, const std::filesystem::path& file);
  std::filesystem::path shard_path(std::size_t shard) const;

  StagedDirectory staged_;
  std::map<std::string, std::string> metadata_;
  ShardPolicy policy_;
  std::vector<Entry> entries_;
  std::size_t shard_count_ = 0;
  std::uint64_t shard_bytes_ = 0;
  bool planned_ = false;
  std::size_t begun_ = 0;                      // planned: entries begun so far
  std::unique_ptr<SafetensorsWriter> writer_;  // planned: the shard being written
  std::vector<int> spools_;                    // unplanned: one spool file per shard
  std::uint64_t pending_bytes_ = 0;            // of the tensor begun last
};

// `raw` (a config.json) without any layout's quantization section ("quantization",
// "quantization_config"): what an encoder's config() adds its own to, so that a model saved in
// another layout (uq export) does not keep the old layout's section, which would decide how the
// directory is read.
nlohmann::json without_quantization(const nlohmann::json& raw);

// Writes `model` with `encoder`: its modules in model order, then its vectors.
void save_layout(const Model& model, const std::filesystem::path& dir, LayoutEncoder& encoder);

// in_features of a Llama-family module from the model config ("down_proj"
// reads the intermediate size, "o_proj" heads × head_dim, others the hidden size).
struct ModelConfig;
std::int64_t llama_in_features(const ModelConfig& config, const std::string& module_path);

}  // namespace uq
