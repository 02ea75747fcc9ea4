#include "api/memory_budget.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "core/error.hpp"
#include "io/byte_size.hpp"
#include "io/safetensors.hpp"

namespace uq {
namespace {

std::string gib(std::uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GiB", static_cast<double>(bytes) / 0x1p30);
  return text;
}

}  // namespace

std::optional<std::uint64_t> available_memory_bytes() {
  std::optional<std::uint64_t> available;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemAvailable:") {
      available = kib * 1024;
      break;
    }
  }
  if (const char* limit = std::getenv("UQ_MEMORY_LIMIT"); limit != nullptr && *limit != '\0') {
    const auto cap = parse_byte_size(limit, "UQ_MEMORY_LIMIT");
    available = available ? std::min(*available, cap) : cap;
  }
  return available;
}

std::optional<std::string> streaming_reason(const std::filesystem::path& model_dir) {
  std::uint64_t float_bytes = 0;
  try {
    float_bytes = Checkpoint::open(model_dir).total_bytes();
  } catch (const Error&) {
    return std::nullopt;
  }
  const auto available = available_memory_bytes();
  // The float weights, plus up to half as much again for their quantized copy.
  const std::uint64_t needed = float_bytes + float_bytes / 2;
  if (!available || needed <= *available) return std::nullopt;
  return "quantizing " + model_dir.string() + " in memory needs about " + gib(needed) + " but " +
         gib(*available) +
         " is available: streaming it from disk tensor by tensor (memory_efficient)";
}

}  // namespace uq
