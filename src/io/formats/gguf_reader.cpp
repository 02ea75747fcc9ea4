#include "io/formats/gguf_reader.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/error.hpp"

namespace uq {
namespace {

constexpr std::array<char, 4> kMagic{'G', 'G', 'U', 'F'};
// Arrays nest (an array of arrays is legal GGUF); deeper than this is hostile.
constexpr int kMaxArrayDepth = 3;
constexpr std::uint32_t kMaxDims = 4;  // GGML_MAX_DIMS
// Each parsed metadata value takes ~100 bytes of memory however small it is
// in the file: the array elements of one file are capped (real tokenizers
// need ~1M: tokens, token types, merges, scores) so that memory stays bounded.
constexpr std::uint64_t kMaxArrayElements = std::uint64_t{1} << 24;

// Reads little-endian fields from a byte range, failing (naming `what`) before
// reading past its end.
class Cursor {
 public:
  Cursor(std::span<const std::byte> bytes, const std::string& origin)
      : bytes_(bytes), origin_(origin) {}

  std::size_t position() const { return position_; }
  // Counts array elements parsed so far against kMaxArrayElements.
  void count_array_elements(std::uint64_t count, const std::string& what) {
    array_elements_ += count;
    if (array_elements_ > kMaxArrayElements) {
      fail(origin_, ": ", what, ": metadata arrays hold more than ", kMaxArrayElements,
           " elements in all");
    }
  }
  std::size_t remaining() const { return bytes_.size() - position_; }

  void need(std::size_t count, const std::string& what) const {
    if (count > remaining()) {
      fail(origin_, ": truncated: ", what, " needs ", count, " bytes at offset ", position_,
           " but only ", remaining(), " remain");
    }
  }

  template <class T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, bytes_.data() + position_, sizeof(T));
    position_ += sizeof(T);
    return value;
  }

  std::string read_string(const std::string& what) {
    const auto length = read<std::uint64_t>(what + " length");
    if (length > remaining()) {
      fail(origin_, ": ", what, ": string length ", length, " exceeds the ", remaining(),
           " bytes left in the file");
    }
    std::string text(reinterpret_cast<const char*>(bytes_.data() + position_),
                     static_cast<std::size_t>(length));
    position_ += static_cast<std::size_t>(length);
    return text;
  }

 private:
  std::span<const std::byte> bytes_;
  const std::string& origin_;
  std::size_t position_ = 0;
  std::uint64_t array_elements_ = 0;
};

// Bytes a value of `type` occupies at least (strings: their length field).
std::size_t minimum_size(GgufValueType type) {
  switch (type) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::Bool:
      return 1;
    case GgufValueType::U16:
    case GgufValueType::I16:
      return 2;
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::F32:
      return 4;
    case GgufValueType::String:
    case GgufValueType::U64:
    case GgufValueType::I64:
    case GgufValueType::F64:
      return 8;
    case GgufValueType::Array:
      return 12;
  }
  return 1;
}

bool is_integer(GgufValueType type) {
  switch (type) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::U16:
    case GgufValueType::I16:
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::U64:
    case GgufValueType::I64:
    case GgufValueType::Bool:
      return true;
    default:
      return false;
  }
}

GgufValueType read_value_type(Cursor& cursor, const std::string& origin, const std::string& what) {
  const auto code = cursor.read<std::uint32_t>(what + " type");
  if (code > static_cast<std::uint32_t>(GgufValueType::F64)) {
    fail(origin, ": ", what, ": unknown value type ", code);
  }
  return static_cast<GgufValueType>(code);
}

GgufValue read_value(Cursor& cursor, GgufValueType type, const std::string& origin,
                     const std::string& what, int depth) {
  GgufValue value;
  value.type = type;
  switch (type) {
    case GgufValueType::U8:
      value.integer = cursor.read<std::uint8_t>(what);
      break;
    case GgufValueType::I8:
      value.integer = cursor.read<std::int8_t>(what);
      break;
    case GgufValueType::U16:
      value.integer = cursor.read<std::uint16_t>(what);
      break;
    case GgufValueType::I16:
      value.integer = cursor.read<std::int16_t>(what);
      break;
    case GgufValueType::U32:
      value.integer = cursor.read<std::uint32_t>(what);
      break;
    case GgufValueType::I32:
      value.integer = cursor.read<std::int32_t>(what);
      break;
    case GgufValueType::I64:
      value.integer = cursor.read<std::int64_t>(what);
      break;
    case GgufValueType::U64: {
      const auto raw = cursor.read<std::uint64_t>(what);
      if (raw > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        fail(origin, ": ", what, ": u64 value ", raw, " is out of range");
      }
      value.integer = static_cast<std::int64_t>(raw);
      break;
    }
    case GgufValueType::Bool: {
      const auto raw = cursor.read<std::uint8_t>(what);
      if (raw > 1) fail(origin, ": ", what, ": bool value ", int{raw}, " is neither 0 nor 1");
      value.integer = raw;
      break;
    }
    case GgufValueType::F32:
      value.number = cursor.read<float>(what);
      break;
    case GgufValueType::F64:
      value.number = cursor.read<double>(what);
      break;
    case GgufValueType::String:
      value.text = cursor.read_string(what);
      break;
    case GgufValueType::Array: {
      if (depth >= kMaxArrayDepth) {
        fail(origin, ": ", what, ": arrays nested deeper than ", kMaxArrayDepth);
      }
      value.element_type = read_value_type(cursor, origin, what + " element");
      const auto count = cursor.read<std::uint64_t>(what + " element count");
      if (count > cursor.remaining() / minimum_size(value.element_type)) {
        fail(origin, ": ", what, ": array of ", count, " ",
             gguf_value_type_name(value.element_type), " elements cannot fit in the ",
             cursor.remaining(), " bytes left in the file");
      }
      cursor.count_array_elements(count, what);
      value.items.reserve(static_cast<std::size_t>(count));
      for (std::uint64_t i = 0; i < count; ++i) {
        value.items.push_back(read_value(cursor, value.element_type, origin, what, depth + 1));
      }
      break;
    }
  }
  return value;
}

bool multiply(std::int64_t a, std::int64_t b, std::int64_t* product) {
  return !__builtin_mul_overflow(a, b, product);
}

}  // namespace

std::string_view gguf_value_type_name(GgufValueType type) {
  constexpr std::array<std::string_view, 13> kNames{"u8",  "i8",  "u16",  "i16",    "u32",
                                                    "i32", "f32", "bool", "string", "array",
                                                    "u64", "i64", "f64"};
  const auto index = static_cast<std::size_t>(type);
  return index < kNames.size() ? kNames[index] : "unknown";
}

std::int64_t GgufTensorInfo::numel() const {
  std::int64_t count = 1;
  for (const auto dim : dims) count *= dim;  // overflow excluded when parsed
  return count;
}

std::shared_ptr<const GgufFile> GgufFile::open(const std::filesystem::path& path) {
  const std::string file = path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(file, ": cannot open: ", std::strerror(errno));
  struct stat status {};
  if (::fstat(fd, &status) != 0 || !S_ISREG(status.st_mode)) {
    ::close(fd);
    fail(file, ": not a regular file");
  }
  const auto size = static_cast<std::size_t>(status.st_size);
  void* mapping = nullptr;
  if (size > 0) {
    mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int error_number = errno;
    ::close(fd);
    if (mapping == MAP_FAILED) fail(file, ": cannot mmap: ", std::strerror(error_number));
  } else {
    ::close(fd);
  }
  std::shared_ptr<GgufFile> result(new GgufFile());
  result->origin_ = file;
  result->mapping_ = static_cast<const std::byte*>(mapping);
  result->mapping_size_ = size;
  result->parse_all({result->mapping_, size});
  return result;
}

std::shared_ptr<const GgufFile> GgufFile::parse(std::span<const std::byte> bytes,
                                                const std::string& origin) {
  std::shared_ptr<GgufFile> result(new GgufFile());
  result->origin_ = origin;
  result->parse_all(bytes);
  return result;
}

GgufFile::~GgufFile() {
  if (mapping_ != nullptr) ::munmap(const_cast<std::byte*>(mapping_), mapping_size_);
}

void GgufFile::parse_all(std::span<const std::byte> bytes) {
  const std::string& file = origin_;
  Cursor cursor(bytes, file);
  cursor.need(4, "the magic");
  if (std::memcmp(bytes.data(), kMagic.data(), kMagic.size()) != 0) {
    fail(file, ": not a GGUF file (no \"GGUF\" magic)");
  }
  (void)cursor.read<std::uint32_t>("the magic");
  version_ = cursor.read<std::uint32_t>("the version");
  if (version_ != 2 && version_ != 3) {
    fail(file, ": GGUF version ", version_, " is not supported (2 and 3 are)");
  }
  const auto tensor_count = cursor.read<std::uint64_t>("the tensor count");
  const auto metadata_count = cursor.read<std::uint64_t>("the metadata count");
  // A key/value takes at least 13 bytes, a tensor info at least 24.
  if (metadata_count > cursor.remaining() / 13) {
    fail(file, ": metadata count ", metadata_count, " cannot fit in the ", bytes.size(),
         "-byte file");
  }
  if (tensor_count > cursor.remaining() / 24) {
    fail(file, ": tensor count ", tensor_count, " cannot fit in the ", bytes.size(), "-byte file");
  }

  for (std::uint64_t i = 0; i < metadata_count; ++i) {
    std::string key = cursor.read_string("metadata key " + std::to_string(i));
    const std::string what = "metadata '" + key + "'";
    const GgufValueType type = read_value_type(cursor, file, what);
    GgufValue value = read_value(cursor, type, file, what, 0);
    if (!metadata_.emplace(std::move(key), std::move(value)).second) {
      fail(file, ": ", what, " appears twice");
    }
  }
  if (const auto it = metadata_.find("general.alignment"); it != metadata_.end()) {
    const GgufValue& alignment = it->second;
    if (alignment.type != GgufValueType::U32 || alignment.integer == 0 ||
        (alignment.integer & (alignment.integer - 1)) != 0) {
      fail(file, ": metadata 'general.alignment' must be a u32 power of two");
    }
    alignment_ = static_cast<std::size_t>(alignment.integer);
  }

  tensors_.reserve(static_cast<std::size_t>(tensor_count));
  for (std::uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo info;
    info.name = cursor.read_string("tensor " + std::to_string(i) + " name");
    const std::string what = "tensor '" + info.name + "'";
    const auto n_dims = cursor.read<std::uint32_t>(what + " dimension count");
    if (n_dims > kMaxDims) {
      fail(file, ": ", what, ": ", n_dims, " dimensions (at most ", kMaxDims, ")");
    }
    std::int64_t numel = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const auto dim = cursor.read<std::uint64_t>(what + " dimension");
      if (dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
          !multiply(numel, static_cast<std::int64_t>(dim), &numel)) {
        fail(file, ": ", what, ": dimension ", dim, " makes the element count overflow");
      }
      info.dims.push_back(static_cast<std::int64_t>(dim));
    }
    const auto type_code = cursor.read<std::uint32_t>(what + " type");
    const auto type = ggml_type_from_code(type_code);
    if (!type) fail(file, ": ", what, ": unsupported ggml type code ", type_code);
    info.type = *type;
    const std::int64_t row = info.row_length();
    if (row % ggml_block_size(info.type) != 0) {
      fail(file, ": ", what, ": row length ", row, " is not a multiple of the ",
           ggml_type_name(info.type), " block size ", ggml_block_size(info.type));
    }
    const std::int64_t blocks = numel / ggml_block_size(info.type);
    std::int64_t nbytes = 0;
    if (!multiply(blocks, static_cast<std::int64_t>(ggml_type_size(info.type)), &nbytes)) {
      fail(file, ": ", what, ": byte size overflows");
    }
    info.nbytes = static_cast<std::size_t>(nbytes);
    const auto offset = cursor.read<std::uint64_t>(what + " offset");
    if (offset % alignment_ != 0) {
      fail(file, ": ", what, ": offset ", offset, " is not a multiple of the alignment ",
           alignment_);
    }
    info.offset = static_cast<std::size_t>(offset);
    if (!tensor_index_.emplace(info.name, tensors_.size()).second) {
      fail(file, ": ", what, " appears twice");
    }
    tensors_.push_back(std::move(info));
  }

  const std::size_t header_end = cursor.position();
  const std::size_t data_start = (header_end + alignment_ - 1) / alignment_ * alignment_;
  if (data_start > bytes.size()) {
    if (!tensors_.empty()) {
      fail(file, ": truncated: the data section starts at ", data_start, " past the end of the ",
           bytes.size(), "-byte file");
    }
  }
  data_ = bytes.data() + std::min(data_start, bytes.size());
  data_size_ = bytes.size() - std::min(data_start, bytes.size());
  for (const auto& info : tensors_) {
    if (info.offset > data_size_ || info.nbytes > data_size_ - info.offset) {
      fail(file, ": tensor '", info.name, "': bytes [", info.offset, ", ",
           static_cast<std::uint64_t>(info.offset) + info.nbytes,
           ") of the data section run past its end (", data_size_, " bytes)");
    }
  }
}

const GgufValue& GgufFile::value(const std::string& key) const {
  const auto it = metadata_.find(key);
  if (it == metadata_.end()) fail(origin_, ": metadata '", key, "' is missing");
  return it->second;
}

std::int64_t GgufFile::integer(const std::string& key) const {
  const GgufValue& entry = value(key);
  if (!is_integer(entry.type)) {
    fail(origin_, ": metadata '", key, "' is ", gguf_value_type_name(entry.type),
         ", expected an integer");
  }
  return entry.integer;
}

double GgufFile::number(const std::string& key) const {
  const GgufValue& entry = value(key);
  if (entry.type == GgufValueType::F32 || entry.type == GgufValueType::F64) return entry.number;
  return static_cast<double>(integer(key));
}

const std::string& GgufFile::string(const std::string& key) const {
  const GgufValue& entry = value(key);
  if (entry.type != GgufValueType::String) {
    fail(origin_, ": metadata '", key, "' is ", gguf_value_type_name(entry.type),
         ", expected a string");
  }
  return entry.text;
}

std::vector<std::string> GgufFile::string_array(const std::string& key) const {
  const GgufValue& entry = value(key);
  if (entry.type != GgufValueType::Array || entry.element_type != GgufValueType::String) {
    fail(origin_, ": metadata '", key, "' is not an array of strings");
  }
  std::vector<std::string> result;
  result.reserve(entry.items.size());
  for (const auto& item : entry.items) result.push_back(item.text);
  return result;
}

std::vector<std::int64_t> GgufFile::integer_array(const std::string& key) const {
  const GgufValue& entry = value(key);
  if (entry.type != GgufValueType::Array || !is_integer(entry.element_type)) {
    fail(origin_, ": metadata '", key, "' is not an array of integers");
  }
  std::vector<std::int64_t> result;
  result.reserve(entry.items.size());
  for (const auto& item : entry.items) result.push_back(item.integer);
  return result;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  const GgufTensorInfo* info = find_tensor(name);
  if (info == nullptr) fail(origin_, ": no tensor '", name, "'");
  return *info;
}

std::span<const std::byte> GgufFile::tensor_data(const GgufTensorInfo& tensor) const {
  return {data_ + tensor.offset, tensor.nbytes};
}

bool is_gguf_file(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) return false;
  std::ifstream stream(path, std::ios::binary);
  std::array<char, 4> magic{};
  stream.read(magic.data(), magic.size());
  return stream.gcount() == 4 && magic == kMagic;
}

}  // namespace uq
