// Reading .safetensors files: the layout is an 8-byte little-endian header
// length, a JSON header, then the data section the header's offsets index.
#include "io/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"

namespace uq {
namespace {

// The limits of the official safetensors library.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
constexpr std::size_t kMaxTensors = 1'000'000;

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::ostringstream text;
  text << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) text << (i ? ", " : "") << shape[i];
  text << ']';
  return text.str();
}

std::uint64_t read_le_u64(const std::byte* bytes) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | std::to_integer<std::uint64_t>(bytes[i]);
  return value;
}

// A JSON integer >= 0 that fits int64; `what` names it in errors.
std::uint64_t non_negative_integer(const nlohmann::json& value, const std::string& where,
                                   std::string_view what) {
  if (!value.is_number_integer()) fail(where, ": ", what, " is not an integer: ", value.dump());
  if (value.is_number_unsigned()) {
    const auto number = value.get<std::uint64_t>();
    if (number > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      fail(where, ": ", what, " ", number, " is too large");
    }
    return number;
  }
  const auto number = value.get<std::int64_t>();
  if (number < 0) fail(where, ": ", what, " is negative (", number, ")");
  return static_cast<std::uint64_t>(number);
}

}  // namespace

std::int64_t TensorView::numel() const {
  std::int64_t count = 1;
  for (const auto dim : shape) count *= dim;
  return count;
}

std::vector<float> TensorView::to_f32() const {
  if (!is_float(dtype)) {
    fail("tensor '", name, "': dtype ", dtype_name(dtype), " is not a float type");
  }
  std::vector<float> values(static_cast<std::size_t>(numel()));
  if (values.size() * dtype_size(dtype) != nbytes) {
    fail("tensor '", name, "': ", nbytes, " bytes do not match ", dtype_name(dtype), " ",
         shape_text(shape));
  }
  convert_to_f32(dtype, data, values.size(), values.data());
  return values;
}

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  const std::string file = path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(file, ": cannot open: ", std::strerror(errno));
  struct stat status {};
  if (::fstat(fd, &status) != 0) {
    const int error_number = errno;
    ::close(fd);
    fail(file, ": cannot stat: ", std::strerror(error_number));
  }
  if (!S_ISREG(status.st_mode)) {
    ::close(fd);
    fail(file, ": not a regular file");
  }
  const auto size = static_cast<std::size_t>(status.st_size);
  if (size < 8) {
    ::close(fd);
    fail(file, ": ", size, "-byte file is too short to hold the 8-byte header length");
  }
  void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int error_number = errno;
  ::close(fd);  // the mapping keeps the file's pages reachable
  if (mapping == MAP_FAILED) fail(file, ": cannot mmap: ", std::strerror(error_number));

  std::shared_ptr<SafetensorsFile> result(new SafetensorsFile());
  result->path_ = path;
  result->mapping_ = static_cast<const std::byte*>(mapping);
  result->mapping_size_ = size;
  result->parse_header();
  return result;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(const_cast<std::byte*>(mapping_), mapping_size_);
}

void SafetensorsFile::parse_header() {
  const std::string file = path_.string();
  const std::uint64_t header_bytes = read_le_u64(mapping_);
  if (header_bytes > kMaxHeaderBytes) {
    fail(file, ": header length ", header_bytes, " exceeds the limit of ", kMaxHeaderBytes,
         " bytes");
  }
  if (header_bytes > mapping_size_ - 8) {
    fail(file, ": header length ", header_bytes, " runs past the end of the ", mapping_size_,
         "-byte file");
  }
  data_offset_ = 8 + static_cast<std::size_t>(header_bytes);
  const std::size_t data_size = mapping_size_ - data_offset_;

  const auto* text = reinterpret_cast<const char*>(mapping_ + 8);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text, text + header_bytes);
  } catch (const nlohmann::json::exception& error) {
    fail(file, ": header is not valid JSON: ", error.what());
  }
  if (!header.is_object()) fail(file, ": header is not a JSON object");
  const std::size_t tensor_count = header.size() - (header.contains("__metadata__") ? 1 : 0);
  if (tensor_count > kMaxTensors) {
    fail(file, ": header lists ", tensor_count, " tensors, more than the limit of ", kMaxTensors);
  }

  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) fail(file, ": __metadata__ is not a JSON object");
      for (const auto& [key, text_value] : value.items()) {
        if (!text_value.is_string()) {
          fail(file, ": __metadata__ value of '", key, "' is not a string: ", text_value.dump());
        }
        metadata_.emplace(key, text_value.get<std::string>());
      }
      continue;
    }
    const std::string where = file + ": tensor '" + name + "'";
    if (!value.is_object()) fail(where, ": entry is not a JSON object");
    const auto dtype_field = value.find("dtype");
    const auto shape_field = value.find("shape");
    const auto offsets_field = value.find("data_offsets");
    if (dtype_field == value.end()) fail(where, ": missing 'dtype'");
    if (shape_field == value.end()) fail(where, ": missing 'shape'");
    if (offsets_field == value.end()) fail(where, ": missing 'data_offsets'");
    if (!dtype_field->is_string()) fail(where, ": 'dtype' is not a string");
    if (!shape_field->is_array()) fail(where, ": 'shape' is not an array");
    if (!offsets_field->is_array() || offsets_field->size() != 2) {
      fail(where, ": 'data_offsets' is not an array of two integers");
    }

    Entry entry{};
    const auto dtype_text = dtype_field->get<std::string>();
    const auto dtype = parse_dtype(dtype_text);
    if (!dtype) fail(where, ": unknown dtype '", dtype_text, "'");
    entry.dtype = *dtype;

    std::size_t byte_count = dtype_size(entry.dtype);
    bool overflow = false;
    for (const auto& dim_value : *shape_field) {
      const auto dim = non_negative_integer(dim_value, where, "shape dimension");
      entry.shape.push_back(static_cast<std::int64_t>(dim));
      overflow = overflow || __builtin_mul_overflow(byte_count, dim, &byte_count);
    }
    if (overflow) {
      fail(where, ": shape ", shape_text(entry.shape), " of ", dtype_text,
           " overflows the byte count");
    }
    entry.begin = non_negative_integer((*offsets_field)[0], where, "data_offsets begin");
    entry.end = non_negative_integer((*offsets_field)[1], where, "data_offsets end");
    if (entry.begin > entry.end) {
      fail(where, ": data_offsets begin ", entry.begin, " is after end ", entry.end);
    }
    if (entry.end > data_size) {
      fail(where, ": data [", entry.begin, ", ", entry.end, ") lies outside the ", data_size,
           "-byte data section");
    }
    if (entry.end - entry.begin != byte_count) {
      fail(where, ": data [", entry.begin, ", ", entry.end, ") holds ", entry.end - entry.begin,
           " bytes but ", dtype_text, " ", shape_text(entry.shape), " needs ", byte_count);
    }
    entries_.emplace(name, std::move(entry));
  }

  // Tensors must tile the data section exactly: no overlap, no hole, no tail.
  std::vector<std::pair<const std::string*, const Entry*>> by_offset;
  by_offset.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) by_offset.emplace_back(&name, &entry);
  std::sort(by_offset.begin(), by_offset.end(), [](const auto& a, const auto& b) {
    return std::tie(a.second->begin, a.second->end) < std::tie(b.second->begin, b.second->end);
  });
  std::size_t covered = 0;
  const std::string* previous = nullptr;
  for (const auto& [name, entry] : by_offset) {
    if (entry->begin < covered) {
      fail(file, ": tensor '", *name, "': data [", entry->begin, ", ", entry->end,
           ") overlaps tensor '", *previous, "' (which ends at ", covered, ")");
    }
    if (entry->begin > covered) {
      fail(file, ": tensor '", *name, "': data starts at ", entry->begin, " leaving a hole [",
           covered, ", ", entry->begin, ") unused by any tensor");
    }
    covered = entry->end;
    previous = name;
    names_.push_back(*name);
  }
  if (covered != data_size) {
    fail(file, ": tensors use ", covered, " bytes of the ", data_size,
         "-byte data section; the rest is unused");
  }
}

bool SafetensorsFile::contains(std::string_view name) const {
  return entries_.contains(name);
}

const SafetensorsFile::Entry& SafetensorsFile::entry(std::string_view name) const {
  const auto found = entries_.find(name);
  if (found == entries_.end()) fail(path_.string(), ": no tensor '", name, "'");
  return found->second;
}

TensorView SafetensorsFile::tensor(std::string_view name) const {
  const Entry& found = entry(name);
  TensorView view;
  view.name = std::string(name);
  view.dtype = found.dtype;
  view.shape = found.shape;
  view.data = mapping_ + data_offset_ + found.begin;
  view.nbytes = found.end - found.begin;
  return view;
}

void SafetensorsFile::release(std::string_view name) const {
  const Entry& found = entry(name);
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto first = reinterpret_cast<std::uintptr_t>(mapping_ + data_offset_ + found.begin);
  const auto last = first + (found.end - found.begin);
  // Inward rounding: pages shared with a neighbouring tensor stay resident.
  const std::uintptr_t start = (first + page - 1) / page * page;
  const std::uintptr_t stop = last / page * page;
  if (start >= stop) return;
  // Advice only: on failure the pages simply stay resident.
  ::madvise(reinterpret_cast<void*>(start), stop - start, MADV_DONTNEED);
}

std::uint64_t SafetensorsFile::file_offset(std::string_view name) const {
  return data_offset_ + entry(name).begin;
}

}  // namespace uq
