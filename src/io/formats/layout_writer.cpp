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

std::size_t LayoutOutput::place(std::uint64_t nbytes) {
  if (shard_count_ == 0 || (policy_.max_shard_bytes != 0 && shard_bytes_ > 0 &&
                            shard_bytes_ + nbytes > policy_.max_shard_bytes)) {
    ++shard_count_;
    shard_bytes_ = 0;
  }
  shard_bytes_ += nbytes;
  return shard_count_ - 1;
}

fs::path LayoutOutput::shard_path(std::size_t shard) const {
  return staged_.path() / shard_name(shard, shard_count_);
}

void LayoutOutput::plan(std::string name, DType dtype, std::vector<std::int64_t> shape) {
  if (!planned_ && !entries_.empty()) {
    fail(staged_.final_path().string(), ": tensor '", name, "' planned after data began");
  }
  planned_ = true;
  const std::uint64_t nbytes = byte_count(dtype, shape, name);
  entries_.push_back({std::move(name), dtype, std::move(shape), nbytes, place(nbytes)});
}

void LayoutOutput::open_planned_shard(std::size_t shard) {
  if (writer_) writer_->commit();
  writer_ = std::make_unique<SafetensorsWriter>(shard_path(shard), metadata_);
  for (const auto& entry : entries_) {
    if (entry.shard == shard) writer_->declare(entry.name, entry.dtype, entry.shape);
  }
}

void LayoutOutput::begin(std::string name, DType dtype, std::vector<std::int64_t> shape) {
  if (pending_bytes_ != 0) {
    fail(staged_.final_path().string(), ": tensor '",
         planned_ ? entries_[begun_ - 1].name : entries_.back().name, "' still lacks ",
         pending_bytes_, " bytes when '", name, "' begins");
  }
  const std::uint64_t nbytes = byte_count(dtype, shape, name);
  if (planned_) {
    if (begun_ == entries_.size() || entries_[begun_].name != name ||
        entries_[begun_].dtype != dtype || entries_[begun_].shape != shape) {
      fail(staged_.final_path().string(), ": tensor '", name,
           "' is not the next planned tensor (or differs from its plan)");
    }
    const std::size_t shard = entries_[begun_].shard;
    if (begun_ == 0 || entries_[begun_ - 1].shard != shard) open_planned_shard(shard);
    ++begun_;
  } else {
    const std::size_t shard = place(nbytes);
    if (shard == spools_.size()) {
      const fs::path spool = staged_.path() / (".spool-" + std::to_string(shard));
      const int fd = ::open(spool.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd < 0) fail(spool.string(), ": cannot create: ", std::strerror(errno));
      ::unlink(spool.c_str());  // anonymous from now on: nothing is left behind
      spools_.push_back(fd);
    }
    entries_.push_back({std::move(name), dtype, std::move(shape), nbytes, shard});
  }
  pending_bytes_ = nbytes;
}

void LayoutOutput::append(std::span<const std::byte> bytes) {
  throw_if_interrupted();
  const Entry* current = planned_ ? (begun_ > 0 ? &entries_[begun_ - 1] : nullptr)
                                  : (entries_.empty() ? nullptr : &entries_.back());
  if (current == nullptr || bytes.size() > pending_bytes_) {
    fail(staged_.final_path().string(), ": ", bytes.size(), " bytes more than tensor '",
         current == nullptr ? std::string() : current->name, "' holds");
  }
  if (planned_) {
    writer_->write(current->name, bytes);
  } else {
    for (std::size_t done = 0; done < bytes.size();) {
      const ssize_t written = ::write(spools_.back(), bytes.data() + done, bytes.size() - done);
      if (written < 0 && errno == EINTR) continue;
      if (written <= 0) {
        fail(staged_.final_path().string(), ": cannot write tensor '", current->name,
             "': ", std::strerror(errno));
      }
      done += static_cast<std::size_t>(written);
    }
  }
  pending_bytes_ -= bytes.size();
}

void LayoutOutput::add(const LayoutTensor& tensor) {
  begin(tensor.name, tensor.dtype, tensor.shape);
  append(tensor.bytes());
}

void LayoutOutput::write_spooled_shard(std::size_t shard, const fs::path& file) {
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
  ::close(spools_[shard]);
  spools_[shard] = -1;
}

void LayoutOutput::commit(const nlohmann::json& config,
                          const std::map<std::string, nlohmann::json>& json_files,
                          const fs::path& source_dir) {
  if (entries_.empty()) fail(staged_.final_path().string(), ": no tensors to write");
  if (pending_bytes_ != 0 || (planned_ && begun_ != entries_.size())) {
    fail(staged_.final_path().string(), ": tensor '",
         planned_ ? entries_[pending_bytes_ != 0 ? begun_ - 1 : begun_].name : entries_.back().name,
         "' lacks ", pending_bytes_ != 0 ? pending_bytes_ : entries_[begun_].nbytes, " bytes");
  }
  if (planned_) {
    writer_->commit();
  } else {
    for (std::size_t shard = 0; shard < shard_count_; ++shard) {
      write_spooled_shard(shard, shard_path(shard));
    }
    std::erase(spools_, -1);
  }
  std::map<std::string, std::string> weight_map;
  std::uint64_t total_bytes = 0;
  for (const auto& entry : entries_) {
    weight_map[entry.name] = shard_name(entry.shard, shard_count_);
    total_bytes += entry.nbytes;
  }
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
  // Everything is in memory already: plan every tensor, then write them.
  std::vector<LayoutTensor> tensors;
  for (const auto& [path, weight] : model.named_weights()) {
    for (auto& tensor : encoder.module_tensors(path, *weight)) tensors.push_back(std::move(tensor));
  }
  for (const auto& [name, values] : model.named_vectors()) {
    tensors.push_back(vector_tensor(name, *values, model.config().dtype));
  }
  LayoutOutput output(dir, encoder.metadata(), encoder.shard_policy());
  for (const auto& tensor : tensors) output.plan(tensor.name, tensor.dtype, tensor.shape);
  for (const auto& tensor : tensors) output.add(tensor);
  output.commit(encoder.config(without_quantization(model.config().raw)), encoder.json_files(),
                model.source_directory());
}

nlohmann::json without_quantization(const nlohmann::json& raw) {
  nlohmann::json config = raw;
  if (config.is_object()) {
    config.erase("quantization");
    config.erase("quantization_config");
  }
  return config;
}

std::int64_t llama_in_features(const ModelConfig& config, const std::string& module_path) {
  if (ends_with(module_path, "down_proj")) return config.intermediate_size;
  if (ends_with(module_path, "o_proj")) return config.num_attention_heads * config.head_dim;
  return config.hidden_size;
}

}  // namespace uq
