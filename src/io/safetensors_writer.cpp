// The streaming .safetensors writer: the header is fixed by the declarations,
// written when data starts, then each tensor's bytes follow in order.
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"

namespace uq {

struct SafetensorsWriter::Impl {
  struct Declared {
    std::string name;
    DType dtype;
    std::vector<std::int64_t> shape;
    std::size_t nbytes;
    bool added;                                    // bytes came with add()
    std::optional<std::vector<std::byte>> copied;  // those bytes until written
  };

  explicit Impl(std::filesystem::path target, std::map<std::string, std::string> meta)
      : path(std::move(target)), metadata(std::move(meta)), file(path) {}

  std::string where(std::string_view name) const {
    return path.string() + ": tensor '" + std::string(name) + "'";
  }
  void declare(std::string name, DType dtype, std::vector<std::int64_t> shape,
               std::optional<std::vector<std::byte>> copied);
  void write_header();
  // Writes the tensors at the cursor that need no write() call (copied or empty).
  void advance_cursor();
  void check_open(std::string_view action) const;

  std::filesystem::path path;
  std::map<std::string, std::string> metadata;
  AtomicFileWriter file;
  std::vector<Declared> tensors;
  std::map<std::string, std::size_t, std::less<>> slots;
  bool header_written = false;
  bool committed = false;
  std::size_t cursor = 0;          // the tensor whose bytes come next
  std::size_t cursor_written = 0;  // bytes of it written so far
};

void SafetensorsWriter::Impl::check_open(std::string_view action) const {
  if (committed) fail(path.string(), ": ", action, " after commit");
  if (file.failed()) fail(path.string(), ": ", action, " after an earlier failure");
}

void SafetensorsWriter::Impl::declare(std::string name, DType dtype,
                                      std::vector<std::int64_t> shape,
                                      std::optional<std::vector<std::byte>> copied) {
  check_open("declaring a tensor");
  if (header_written) {
    fail(where(name), ": declared after data writing began (declare every tensor first)");
  }
  if (name.empty()) fail(path.string(), ": empty tensor name");
  if (name == "__metadata__") fail(where(name), ": reserved name");
  if (slots.contains(name)) fail(where(name), ": declared twice");
  std::size_t nbytes = dtype_size(dtype);
  for (const auto dim : shape) {
    if (dim < 0) fail(where(name), ": negative dimension ", dim);
    if (__builtin_mul_overflow(nbytes, static_cast<std::size_t>(dim), &nbytes)) {
      fail(where(name), ": shape overflows the byte count");
    }
  }
  if (copied && copied->size() != nbytes) {
    fail(where(name), ": got ", copied->size(), " bytes but ", dtype_name(dtype), " shape needs ",
         nbytes);
  }
  slots.emplace(name, tensors.size());
  const bool added = copied.has_value();
  tensors.push_back({std::move(name), dtype, std::move(shape), nbytes, added, std::move(copied)});
}

void SafetensorsWriter::Impl::write_header() {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::size_t offset = 0;
  for (const auto& tensor : tensors) {
    header[tensor.name] = {{"dtype", dtype_name(tensor.dtype)},
                           {"shape", tensor.shape},
                           {"data_offsets", {offset, offset + tensor.nbytes}}};
    offset += tensor.nbytes;
  }
  std::string text = header.dump();
  // Like the official library: spaces pad the header so that the data section
  // starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  std::byte length[8];
  for (std::size_t i = 0; i < 8; ++i) {
    length[i] = static_cast<std::byte>((static_cast<std::uint64_t>(text.size()) >> (8 * i)) & 0xff);
  }
  file.write(length);
  file.write(text);
  header_written = true;
  advance_cursor();
}

void SafetensorsWriter::Impl::advance_cursor() {
  while (cursor < tensors.size() && (tensors[cursor].copied || tensors[cursor].nbytes == 0)) {
    auto& tensor = tensors[cursor];
    if (tensor.copied) {
      file.write(*tensor.copied);
      tensor.copied.reset();
    }
    ++cursor;
  }
}

SafetensorsWriter::SafetensorsWriter(std::filesystem::path path,
                                     std::map<std::string, std::string> metadata)
    : impl_(std::make_unique<Impl>(std::move(path), std::move(metadata))) {}

SafetensorsWriter::~SafetensorsWriter() = default;
SafetensorsWriter::SafetensorsWriter(SafetensorsWriter&&) noexcept = default;
SafetensorsWriter& SafetensorsWriter::operator=(SafetensorsWriter&&) noexcept = default;

void SafetensorsWriter::add(std::string name, DType dtype, std::vector<std::int64_t> shape,
                            std::span<const std::byte> bytes) {
  impl_->declare(std::move(name), dtype, std::move(shape),
                 std::vector<std::byte>(bytes.begin(), bytes.end()));
}

void SafetensorsWriter::declare(std::string name, DType dtype, std::vector<std::int64_t> shape) {
  impl_->declare(std::move(name), dtype, std::move(shape), std::nullopt);
}

void SafetensorsWriter::write(std::string_view name, std::span<const std::byte> chunk) {
  Impl& impl = *impl_;
  impl.check_open("writing data");
  const auto slot = impl.slots.find(name);
  if (slot == impl.slots.end()) fail(impl.where(name), ": was never declared");
  if (impl.tensors[slot->second].added) {
    fail(impl.where(name), ": its bytes were given to add(); write() is for declared tensors");
  }
  if (!impl.header_written) impl.write_header();
  if (chunk.empty()) return;
  const auto& tensor = impl.tensors[slot->second];
  if (slot->second < impl.cursor) {
    fail(impl.where(name), ": ", chunk.size(), " bytes more than its declared ", tensor.nbytes);
  }
  if (slot->second > impl.cursor) {
    const auto& current = impl.tensors[impl.cursor];
    fail(impl.where(name), ": written out of declaration order; tensor '", current.name,
         "' still needs ", current.nbytes - impl.cursor_written, " of its ", current.nbytes,
         " bytes");
  }
  if (chunk.size() > tensor.nbytes - impl.cursor_written) {
    fail(impl.where(name), ": chunk of ", chunk.size(), " bytes overruns its declared ",
         tensor.nbytes, " bytes (", impl.cursor_written, " already written)");
  }
  impl.file.write(chunk);
  impl.cursor_written += chunk.size();
  if (impl.cursor_written == tensor.nbytes) {
    ++impl.cursor;
    impl.cursor_written = 0;
    impl.advance_cursor();
  }
}

void SafetensorsWriter::commit() {
  Impl& impl = *impl_;
  impl.check_open("commit");
  if (!impl.header_written) impl.write_header();
  if (impl.cursor < impl.tensors.size()) {
    const auto& current = impl.tensors[impl.cursor];
    fail(impl.where(current.name), ": commit before all data was written (", impl.cursor_written,
         " of its ", current.nbytes, " bytes; ", impl.tensors.size() - impl.cursor - 1,
         " later tensors pending)");
  }
  impl.file.commit();
  impl.committed = true;
}

}  // namespace uq
