#include "io/formats/gguf_writer.hpp"

#include <cstring>
#include <set>
#include <utility>

#include "core/error.hpp"
#include "io/atomic_file.hpp"

namespace uq {
namespace {

class Encoder {
 public:
  void put_raw(const void* data, std::size_t size) {
    const std::size_t old_size = out.size();
    out.resize(old_size + size);
    if (size > 0) std::memcpy(out.data() + old_size, data, size);
  }
  template <class T>
  void put(T value) {
    put_raw(&value, sizeof(T));
  }
  void put_string(const std::string& text) {
    put<std::uint64_t>(text.size());
    put_raw(text.data(), text.size());
  }
  void put_value(const GgufValue& value) {
    switch (value.type) {
      case GgufValueType::U8:
        put(static_cast<std::uint8_t>(value.integer));
        break;
      case GgufValueType::I8:
        put(static_cast<std::int8_t>(value.integer));
        break;
      case GgufValueType::U16:
        put(static_cast<std::uint16_t>(value.integer));
        break;
      case GgufValueType::I16:
        put(static_cast<std::int16_t>(value.integer));
        break;
      case GgufValueType::U32:
        put(static_cast<std::uint32_t>(value.integer));
        break;
      case GgufValueType::I32:
        put(static_cast<std::int32_t>(value.integer));
        break;
      case GgufValueType::U64:
        put(static_cast<std::uint64_t>(value.integer));
        break;
      case GgufValueType::I64:
        put(value.integer);
        break;
      case GgufValueType::Bool:
        put(static_cast<std::uint8_t>(value.integer != 0));
        break;
      case GgufValueType::F32:
        put(static_cast<float>(value.number));
        break;
      case GgufValueType::F64:
        put(value.number);
        break;
      case GgufValueType::String:
        put_string(value.text);
        break;
      case GgufValueType::Array:
        put(static_cast<std::uint32_t>(value.element_type));
        put<std::uint64_t>(value.items.size());
        for (const auto& item : value.items) put_value(item);
        break;
    }
  }
  std::vector<std::byte> out;
};

GgufValue scalar(GgufValueType type) {
  GgufValue value;
  value.type = type;
  return value;
}

}  // namespace

struct GgufWriter::Impl {
  std::filesystem::path path;
  std::size_t alignment;
  std::vector<std::pair<std::string, GgufValue>> metadata;
  std::set<std::string> keys;
  std::vector<GgufTensorInfo> tensors;
  std::set<std::string> names;
  std::size_t data_size = 0;
  std::size_t next_tensor = 0;
  std::unique_ptr<AtomicFileWriter> file;

  void pad_to_alignment(std::size_t written) {
    const std::size_t padding = (alignment - written % alignment) % alignment;
    const std::vector<std::byte> zeros(padding);
    file->write(zeros);
  }

  void write_header() {
    Encoder encoder;
    encoder.put_raw("GGUF", 4);
    encoder.put<std::uint32_t>(3);
    encoder.put<std::uint64_t>(tensors.size());
    encoder.put<std::uint64_t>(metadata.size());
    for (const auto& [key, value] : metadata) {
      encoder.put_string(key);
      encoder.put(static_cast<std::uint32_t>(value.type));
      encoder.put_value(value);
    }
    for (const auto& tensor : tensors) {
      encoder.put_string(tensor.name);
      encoder.put(static_cast<std::uint32_t>(tensor.dims.size()));
      for (const auto dim : tensor.dims) encoder.put(static_cast<std::uint64_t>(dim));
      encoder.put(static_cast<std::uint32_t>(tensor.type));
      encoder.put(static_cast<std::uint64_t>(tensor.offset));
    }
    file = std::make_unique<AtomicFileWriter>(path);
    file->write(encoder.out);
    pad_to_alignment(encoder.out.size());
  }
};

GgufWriter::GgufWriter(std::filesystem::path path, std::uint32_t alignment)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = std::move(path);
  impl_->alignment = alignment;
  add_u32("general.alignment", alignment);
}

GgufWriter::~GgufWriter() = default;

void GgufWriter::add(const std::string& key, GgufValue value) {
  if (impl_->file) fail(impl_->path.string(), ": metadata '", key, "' added after tensor data");
  if (!impl_->keys.insert(key).second) {
    fail(impl_->path.string(), ": metadata '", key, "' added twice");
  }
  impl_->metadata.emplace_back(key, std::move(value));
}

void GgufWriter::add_string(const std::string& key, std::string value) {
  GgufValue entry = scalar(GgufValueType::String);
  entry.text = std::move(value);
  add(key, std::move(entry));
}

void GgufWriter::add_u32(const std::string& key, std::uint32_t value) {
  GgufValue entry = scalar(GgufValueType::U32);
  entry.integer = value;
  add(key, std::move(entry));
}

void GgufWriter::add_i32(const std::string& key, std::int32_t value) {
  GgufValue entry = scalar(GgufValueType::I32);
  entry.integer = value;
  add(key, std::move(entry));
}

void GgufWriter::add_f32(const std::string& key, float value) {
  GgufValue entry = scalar(GgufValueType::F32);
  entry.number = value;
  add(key, std::move(entry));
}

void GgufWriter::add_bool(const std::string& key, bool value) {
  GgufValue entry = scalar(GgufValueType::Bool);
  entry.integer = value ? 1 : 0;
  add(key, std::move(entry));
}

void GgufWriter::add_strings(const std::string& key, const std::vector<std::string>& values) {
  GgufValue entry = scalar(GgufValueType::Array);
  entry.element_type = GgufValueType::String;
  for (const auto& text : values) {
    GgufValue item = scalar(GgufValueType::String);
    item.text = text;
    entry.items.push_back(std::move(item));
  }
  add(key, std::move(entry));
}

void GgufWriter::add_i32s(const std::string& key, const std::vector<std::int32_t>& values) {
  GgufValue entry = scalar(GgufValueType::Array);
  entry.element_type = GgufValueType::I32;
  for (const auto number : values) {
    GgufValue item = scalar(GgufValueType::I32);
    item.integer = number;
    entry.items.push_back(item);
  }
  add(key, std::move(entry));
}

void GgufWriter::add_f32s(const std::string& key, const std::vector<float>& values) {
  GgufValue entry = scalar(GgufValueType::Array);
  entry.element_type = GgufValueType::F32;
  for (const auto number : values) {
    GgufValue item = scalar(GgufValueType::F32);
    item.number = number;
    entry.items.push_back(item);
  }
  add(key, std::move(entry));
}

void GgufWriter::declare(const std::string& name, std::vector<std::int64_t> dims, GgmlType type) {
  if (impl_->file) fail(impl_->path.string(), ": tensor '", name, "' declared after tensor data");
  if (!impl_->names.insert(name).second) {
    fail(impl_->path.string(), ": tensor '", name, "' declared twice");
  }
  GgufTensorInfo info;
  info.name = name;
  info.dims = std::move(dims);
  info.type = type;
  info.nbytes = ggml_row_bytes(type, info.row_length()) * static_cast<std::size_t>(info.rows());
  info.offset = impl_->data_size;
  const std::size_t alignment = impl_->alignment;
  impl_->data_size += (info.nbytes + alignment - 1) / alignment * alignment;
  impl_->tensors.push_back(std::move(info));
}

void GgufWriter::write(const std::string& name, std::span<const std::byte> bytes) {
  if (!impl_->file) impl_->write_header();
  if (impl_->next_tensor >= impl_->tensors.size() ||
      impl_->tensors[impl_->next_tensor].name != name) {
    fail(impl_->path.string(), ": tensor '", name, "' written out of declaration order");
  }
  const GgufTensorInfo& info = impl_->tensors[impl_->next_tensor];
  if (bytes.size() != info.nbytes) {
    fail(impl_->path.string(), ": tensor '", name, "': ", bytes.size(), " bytes given, ",
         info.nbytes, " declared");
  }
  impl_->file->write(bytes);
  impl_->pad_to_alignment(bytes.size());
  ++impl_->next_tensor;
}

void GgufWriter::commit() {
  if (!impl_->file) impl_->write_header();
  if (impl_->next_tensor != impl_->tensors.size()) {
    fail(impl_->path.string(), ": tensor '", impl_->tensors[impl_->next_tensor].name,
         "' declared but never written");
  }
  impl_->file->commit();
}

}  // namespace uq
