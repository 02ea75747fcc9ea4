#pragma once
// Whether a model fits in memory: quantize_model(path) and `uq quantize` stream
// it from disk (memory_efficient) when loading it whole would not fit.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace uq {

// MemAvailable from /proc/meminfo, lowered to the UQ_MEMORY_LIMIT environment
// variable (a size such as "8GB") when that is set; nullopt when neither is known.
std::optional<std::uint64_t> available_memory_bytes();

// A sentence saying why the Hugging Face model at `model_dir` is streamed
// (quantizing it in memory needs its float weights plus their quantized copy,
// more than is available); nullopt when it fits or cannot be read (the
// loader then reports the problem).
std::optional<std::string> streaming_reason(const std::filesystem::path& model_dir);

}  // namespace uq
