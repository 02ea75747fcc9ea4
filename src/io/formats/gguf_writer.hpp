#pragma once
// Writes a GGUF v3 file (layout in gguf_reader.hpp) atomically: metadata and
// tensor infos are declared first, then each tensor's bytes are written in
// declaration order (so memory stays bounded by one tensor), then commit()
// renames the complete file into place. general.alignment is always written.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/formats/gguf_reader.hpp"
#include "quant/ggml_blocks.hpp"

namespace uq {

class GgufWriter {
 public:
  explicit GgufWriter(std::filesystem::path path, std::uint32_t alignment = 32);
  ~GgufWriter();
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Metadata, in the order added (keys must be unique).
  void add(const std::string& key, GgufValue value);
  void add_string(const std::string& key, std::string value);
  void add_u32(const std::string& key, std::uint32_t value);
  void add_i32(const std::string& key, std::int32_t value);
  void add_f32(const std::string& key, float value);
  void add_bool(const std::string& key, bool value);
  void add_strings(const std::string& key, const std::vector<std::string>& values);
  void add_i32s(const std::string& key, const std::vector<std::int32_t>& values);
  void add_f32s(const std::string& key, const std::vector<float>& values);

  // `dims` in ggml order (dims[0] = row length).
  void declare(const std::string& name, std::vector<std::int64_t> dims, GgmlType type);
  // The next declared tensor's bytes, exactly its size; writes the header first.
  void write(const std::string& name, std::span<const std::byte> bytes);
  void commit();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace uq
