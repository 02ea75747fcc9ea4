#pragma once
// Fuzz targets feed bytes to parsers that read files: this writes them to a
// per-process scratch directory (created once, removed at exit), in memory
// (/dev/shm) where there is one: a disk-backed /tmp makes runs ~20x slower.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace uq::fuzz {

inline const std::filesystem::path& scratch_directory() {
  static const struct Scratch {
    std::filesystem::path path;
    Scratch()
        : path((std::filesystem::is_directory("/dev/shm")
                    ? std::filesystem::path("/dev/shm")
                    : std::filesystem::temp_directory_path()) /
               ("uq-fuzz-" + std::to_string(::getpid()))) {
      std::filesystem::create_directories(path);
    }
    ~Scratch() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  } scratch;
  return scratch.path;
}

inline void write_bytes(const std::filesystem::path& path, const std::uint8_t* data,
                        std::size_t size) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

}  // namespace uq::fuzz
