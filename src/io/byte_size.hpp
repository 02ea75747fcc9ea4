#pragma once
// Sizes written for people: "5GB", "500MB", "1.5GiB", "123" (bytes).
#include <cstdint>
#include <string>

namespace uq {

// KB/MB/GB/TB are powers of 1000 (as Hugging Face's shard sizes), KiB/MiB/GiB/TiB
// powers of 1024; case-insensitive. Throws uq::Error naming `what` otherwise.
std::uint64_t parse_byte_size(const std::string& text, const std::string& what);

}  // namespace uq
