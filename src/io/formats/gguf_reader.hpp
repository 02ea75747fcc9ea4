#pragma once
// GGUF (llama.cpp's single-file model format, versions 2 and 3), read strictly:
// every count, length, dimension and offset is checked against the bytes that
// remain before it is used, so a truncated or lying file fails with uq::Error
// naming the file and the field, never reads out of range or allocates from an
// unchecked size. Layout (little-endian): "GGUF", u32 version, u64 tensor
// count, u64 metadata count, the metadata key/values, the tensor infos (name,
// u32 n_dims, u64 dims[n_dims] innermost first, u32 ggml type, u64 offset),
// padding to general.alignment (default 32), then the tensor data.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "quant/ggml_blocks.hpp"

namespace uq {

enum class GgufValueType : std::uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

// One metadata value. Integers keep their declared type in `type` and their
// value in `integer` (unsigned 64-bit values above INT64_MAX are rejected).
struct GgufValue {
  GgufValueType type = GgufValueType::U8;
  std::int64_t integer = 0;                        // U8..I64 and Bool
  double number = 0.0;                             // F32, F64
  std::string text;                                // String
  GgufValueType element_type = GgufValueType::U8;  // Array
  std::vector<GgufValue> items;                    // Array
};

struct GgufTensorInfo {
  std::string name;
  std::vector<std::int64_t> dims;  // ggml order: dims[0] is the contiguous (row) length
  GgmlType type = GgmlType::F32;
  std::size_t offset = 0;  // relative to the data section
  std::size_t nbytes = 0;

  std::int64_t numel() const;
  std::int64_t row_length() const { return dims.empty() ? 1 : dims[0]; }
  std::int64_t rows() const { return row_length() == 0 ? 0 : numel() / row_length(); }
};

class GgufFile {
 public:
  // Maps and parses `path`; throws uq::Error naming the file and the field.
  static std::shared_ptr<const GgufFile> open(const std::filesystem::path& path);
  // Parses bytes held elsewhere (kept alive by the caller); `origin` names them in errors.
  static std::shared_ptr<const GgufFile> parse(std::span<const std::byte> bytes,
                                               const std::string& origin);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& origin() const { return origin_; }
  std::uint32_t version() const { return version_; }
  std::size_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }  // in file order

  bool has(const std::string& key) const { return metadata_.count(key) != 0; }
  // Typed lookups; each throws uq::Error naming the file and key when the key
  // is absent or holds another type.
  const GgufValue& value(const std::string& key) const;
  std::int64_t integer(const std::string& key) const;  // any integer type
  double number(const std::string& key) const;         // any integer or float type
  const std::string& string(const std::string& key) const;
  std::vector<std::string> string_array(const std::string& key) const;
  std::vector<std::int64_t> integer_array(const std::string& key) const;

  const GgufTensorInfo* find_tensor(const std::string& name) const;  // null when absent
  const GgufTensorInfo& tensor(const std::string& name) const;       // throws when absent
  // The tensor's bytes inside the file (valid while this object lives).
  std::span<const std::byte> tensor_data(const GgufTensorInfo& tensor) const;

 private:
  GgufFile() = default;
  void parse_all(std::span<const std::byte> bytes);

  std::string origin_;
  std::uint32_t version_ = 0;
  std::size_t alignment_ = 32;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, std::size_t, std::less<>> tensor_index_;
  const std::byte* data_ = nullptr;  // start of the data section
  std::size_t data_size_ = 0;
  const std::byte* mapping_ = nullptr;  // owned mmap, when opened from a path
  std::size_t mapping_size_ = 0;
};

// True when `path` is a regular file starting with the GGUF magic.
bool is_gguf_file(const std::filesystem::path& path);

std::string_view gguf_value_type_name(GgufValueType type);

}  // namespace uq
