#include "io/formats/layout_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.hpp"
#include "core/interrupt.hpp"
#include "io/atomic_file.hpp"
#include "io/hf_config.hpp"
#include "io/safetensors.hpp"
#include "model/decoder.hpp"

namespace uq {
namespace fs = std::filesystem;
namespace {

constexpr const char* kCopiedFiles[] = {"tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "generation_config.json",
                                        "chat_template.jinja"};

// Spooled bytes travel to the final shard in pieces of this size.
constexpr std::size_t kCopyBytes = 8u << 20;

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::uint64_t byte_count(DType dtype, const std::vector<std::int64_t>& shape,
                         const std::string& name) {
  std::uint64_t bytes = dtype_size(dtype);
  for (const auto dim : shape) {
    if (dim < 0) fail("tensor '", name, "': negative dimension ", dim);
    bytes *= static_cast<std::uint64_t>(dim);
  }
  return bytes;
}

std::string shard_name(std::size_t index, std::size_t count) {
  if (count == 1) return "model.safetensors";
  char name[64];
  std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return name;
}

}  // namespace

LayoutTensor vector_tensor(std::string name, std::span<const float> values, DType dtype) {
  LayoutTensor tensor{std::move(name), dtype, {static_cast<std::int64_t>(values.size())}, {}, {}};
  tensor.owned.resize(values.size() * dtype_size(dtype));
  convert_from_f32(values.data(), values.size(), dtype, tensor.owned.data());
  return tensor;
}

LayoutOutput::LayoutOutput(const fs::path& dir, std::map<std::string, std::string> metadata,
                           ShardPolicy policy)
    : staged_(dir), metadata_(std::move(metadata)), policy_(policy) {}

LayoutOutput::~LayoutOutput() {
  for (const int fd : spools_) ::close(fd);
}

void LayoutOutput::begin(std::string name, DType dtype, std::vector<std::int64_t> shape) {
  if (pending_bytes_ != 0) {
    fail(staged_.final_path().string(), ": tensor '", entries_.back().name, "' still lacks ",
         pending_bytes_, " bytes when '", name, "' begins");
  }
  const std::uint64_t nbytes = byte_count(dtype, shape, name);
  const bool new_shard = spools_.empty() || (policy_.max_shard_bytes != 0 && shard_bytes_ > 0 &&
                                             shard_bytes_ + nbytes > policy_.max_shard_bytes);
  if (new_shard) {
    const fs::path spool = staged_.path() / (".spool-" + std::to_string(spools_.size()));
    const int fd = ::open(spool.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) fail(spool.string(), ": cannot create: ", std::strerror(errno));
    ::unlink(spool.c_str());  // anonymous from now on: nothing is left behind
    spools_.push_back(fd);
    shard_bytes_ = 0;
  }
  entries_.push_back({std::move(name), dtype, std::move(shape), nbytes, spools_.size() - 1});
  shard_bytes_ += nbytes;
  pending_bytes_ = nbytes;
}

void LayoutOutput::append(std::span<const std::byte> bytes) {
  throw_if_interrupted();
  if (entries_.empty() || bytes.size() > pending_bytes_) {
    fail(staged_.final_path().string(), ": ", bytes.size(), " bytes more than tensor '",
         entries_.empty() ? std::string() : entries_.back().name, "' holds");
  }
  const int fd = spools_.back();
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t written = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      fail(staged_.final_path().string(), ": cannot write tensor '", entries_.back().name,
           "': ", std::strerror(errno));
    }
    done += static_cast<std::size_t>(written);
  }
  pending_bytes_ -= bytes.size();
}

void LayoutOutput::add(const LayoutTensor& tensor) {
  begin(tensor.name, tensor.dtype, tensor.shape);
  append(tensor.bytes());
}

void LayoutOutput::write_shard(std::size_t shard, const fs::path& file) {
  SafetensorsWriter writer(file, metadata_);
  for (const auto& entry : entries_) {
    if (entry.shard == shard) writer.declare(entry.name, entry.dtype, entry.shape);
  }
  std::vector<std::byte> buffer(kCopyBytes);
  off_t offset = 0;
  for (const auto& entry : entries_) {
    if (entry.shard != shard) continue;
    for (std::uint64_t left = entry.nbytes; left > 0;) {
      throw_if_interrupted();
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(left, buffer.size()));
      const ssize_t got = ::pread(spools_[shard], buffer.data(), want, offset);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        fail(file.string(), ": cannot read back tensor '", entry.name,
             "': ", got < 0 ? std::strerror(errno) : "spool file is short");
      }
      writer.write(entry.name, {buffer.data(), static_cast<std::size_t>(got)});
      offset += got;
      left -= static_cast<std::uint64_t>(got);
    }
  }
  writer.commit();
}

void LayoutOutput::commit(const nlohmann::json& config,
                          const std::map<std::string, nlohmann::json>& json_files,
                          const fs::path& source_dir) {
  if (pending_bytes_ != 0) {
    fail(staged_.final_path().string(), ": tensor '", entries_.back().name, "' lacks ",
         pending_bytes_, " bytes");
  }
  if (spools_.empty()) fail(staged_.final_path().string(), ": no tensors to write");
  std::map<std::string, std::string> weight_map;
  std::uint64_t total_bytes = 0;
  for (std::size_t shard = 0; shard < spools_.size(); ++shard) {
    const std::string name = shard_name(shard, spools_.size());
    write_shard(shard, staged_.path() / name);
    ::close(spools_[shard]);
    spools_[shard] = -1;
    for (const auto& entry : entries_) {
      if (entry.shard != shard) continue;
      weight_map[entry.name] = name;
      total_bytes += entry.nbytes;
    }
  }
  std::erase(spools_, -1);
  if (policy_.write_index) write_safetensors_index(staged_.path(), weight_map, total_bytes);
  write_file_atomic(staged_.path() / "config.json", config.dump(4) + "\n");
  for (const auto& [name, json] : json_files) {
    write_file_atomic(staged_.path() / name, json.dump(4) + "\n");
  }
  for (const char* file : kCopiedFiles) {
    if (!source_dir.empty() && fs::exists(source_dir / file)) {
      std::error_code error;
      fs::copy_file(source_dir / file, staged_.path() / file, error);
      if (error) fail(staged_.final_path().string(), ": cannot copy ", file, ": ", error.message());
    }
  }
  throw_if_interrupted();
  staged_.commit();
}

void save_layout(const Model& model, const fs::path& dir, LayoutEncoder& encoder) {
  LayoutOutput output(dir, encoder.metadata(), encoder.shard_policy());
  for (const auto& [path, weight] : model.named_weights()) {
    for (const auto& tensor : encoder.module_tensors(path, *weight)) output.add(tensor);
  }
  for (const auto& [name, values] : model.named_vectors()) {
    output.add(vector_tensor(name, *values, model.config().dtype));
  }
  output.commit(encoder.config(model.config().raw), encoder.json_files(), model.source_directory());
}

std::int64_t llama_in_features(const ModelConfig& config, const std::string& module_path) {
  if (ends_with(module_path, "down_proj")) return config.intermediate_size;
  if (ends_with(module_path, "o_proj")) return config.num_attention_heads * config.head_dim;
  return config.hidden_size;
}

}  // namespace uq
