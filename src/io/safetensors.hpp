#pragma once
// safetensors: memory-mapped, validated reading; sharded checkpoints; and a
// streaming writer that never leaves a half-written file under the final name.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.hpp"

namespace uq {

// A read-only view of one stored tensor. `data` stays valid while the file
// (or checkpoint) that produced it is alive. It may be unaligned for its dtype
// (the format packs tensors back to back): read it with memcpy or convert_to_f32.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  const std::byte* data = nullptr;
  std::size_t nbytes = 0;

  std::int64_t numel() const;
  // Float dtypes converted to float32 (throws for integer dtypes).
  std::vector<float> to_f32() const;
};

class SafetensorsFile {
 public:
  // Maps and validates the file; throws uq::Error naming the file (and tensor).
  static std::shared_ptr<const SafetensorsFile> open(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Tensor names in order of their data offsets.
  const std::vector<std::string>& names() const { return names_; }
  bool contains(std::string_view name) const;
  // Throws uq::Error "<file>: no tensor '<name>'" when absent.
  TensorView tensor(std::string_view name) const;
  // Sum of the tensors' sizes (the data section).
  std::size_t data_bytes() const { return mapping_size_ - data_offset_; }
  // Tells the kernel the pages lying wholly inside this tensor's bytes may be
  // dropped (streaming use); reading the tensor again faults them back in.
  void release(std::string_view name) const;
  // Where this tensor's bytes begin in the file (to read them with pread, past the mapping).
  std::uint64_t file_offset(std::string_view name) const;

 private:
  struct Entry {
    DType dtype;
    std::vector<std::int64_t> shape;
    std::size_t begin;  // relative to the data section
    std::size_t end;
  };
  SafetensorsFile() = default;
  void parse_header();
  const Entry& entry(std::string_view name) const;

  std::filesystem::path path_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, Entry, std::less<>> entries_;
  std::vector<std::string> names_;
  const std::byte* mapping_ = nullptr;
  std::size_t mapping_size_ = 0;
  std::size_t data_offset_ = 0;
};

// A Hugging Face checkpoint directory: model.safetensors, or shards listed by
// model.safetensors.index.json (every shard inside the directory, symlinks
// included, except that a hub cache snapshot may point into its blobs/; tensors a
// shard holds beyond those the index lists are kept too), or without either
// any *.safetensors files there. A tensor name may appear in only one file.
// Also opens a single .safetensors file path.
class Checkpoint {
 public:
  static Checkpoint open(const std::filesystem::path& path);

  std::vector<std::string> names() const;  // sorted
  bool contains(std::string_view name) const;
  TensorView tensor(std::string_view name) const;  // throws naming tensor and directory
  const SafetensorsFile& file_of(std::string_view name) const;
  const std::filesystem::path& path() const { return path_; }
  // Metadata of the first shard (mlx-lm and others store "format" there).
  const std::map<std::string, std::string>& metadata() const;
  std::size_t total_bytes() const;  // sum of the tensors' data sizes
  const std::vector<std::shared_ptr<const SafetensorsFile>>& files() const { return files_; }

 private:
  std::filesystem::path path_;
  std::vector<std::shared_ptr<const SafetensorsFile>> files_;
  std::map<std::string, std::size_t, std::less<>> file_index_;  // tensor -> files_ slot
};

// Writes one .safetensors file. Two ways to use it:
//  - add(name, dtype, shape, bytes) for each tensor (bytes copied), then commit();
//  - declare(...) every tensor first, then write(name, chunk) their bytes in
//    declaration order (any chunking), then commit(): memory stays bounded.
// add() and declare() may be mixed while no data has been written; the header
// lists tensors in declaration order with contiguous offsets. Data goes to a
// temporary file next to `path` (see AtomicFileWriter), is fsync'ed and renamed
// to `path` on commit(). Destroying an uncommitted writer removes the temporary
// file. Wrong byte counts, chunks out of order and I/O errors throw uq::Error
// naming the file (and tensor).
class SafetensorsWriter {
 public:
  explicit SafetensorsWriter(std::filesystem::path path,
                             std::map<std::string, std::string> metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  // A moved-from writer may only be destroyed.
  SafetensorsWriter(SafetensorsWriter&&) noexcept;
  SafetensorsWriter& operator=(SafetensorsWriter&&) noexcept;

  void add(std::string name, DType dtype, std::vector<std::int64_t> shape,
           std::span<const std::byte> bytes);
  void declare(std::string name, DType dtype, std::vector<std::int64_t> shape);
  void write(std::string_view name, std::span<const std::byte> chunk);
  void commit();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes <dir>/model.safetensors.index.json atomically:
// {"metadata": {"total_size": N}, "weight_map": {tensor: shard file name}}.
void write_safetensors_index(const std::filesystem::path& dir,
                             const std::map<std::string, std::string>& weight_map,
                             std::uint64_t total_size);

}  // namespace uq
