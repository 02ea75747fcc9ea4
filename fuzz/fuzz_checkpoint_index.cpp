// libFuzzer target: arbitrary bytes as model.safetensors.index.json in a
// directory holding one valid shard (and a sibling directory holding another, to
// tempt path escapes). Opening must succeed or throw uq::Error.
#include <cstdint>
#include <filesystem>
#include <vector>

#include "core/error.hpp"
#include "fuzz_input_file.hpp"
#include "io/safetensors.hpp"

namespace {

void write_shard(const std::filesystem::path& path, const char* first, const char* second) {
  uq::SafetensorsWriter writer(path);
  const std::vector<float> values = {1.0F, 2.0F, 3.0F, 4.0F};
  writer.add(first, uq::DType::F32, {2, 2}, std::as_bytes(std::span(values)));
  writer.add(second, uq::DType::F32, {4}, std::as_bytes(std::span(values)));
  writer.commit();
}

const std::filesystem::path& checkpoint_directory() {
  static const std::filesystem::path directory = [] {
    const auto root = uq::fuzz::scratch_directory();
    const auto inside = root / "checkpoint";
    std::filesystem::create_directories(inside);
    std::filesystem::create_directories(root / "outside");
    write_shard(inside / "model-00001-of-00001.safetensors", "a", "b");
    write_shard(root / "outside" / "secret.safetensors", "c", "d");
    return inside;
  }();
  return directory;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& directory = checkpoint_directory();
  uq::fuzz::write_bytes(directory / "model.safetensors.index.json", data, size);
  try {
    const uq::Checkpoint checkpoint = uq::Checkpoint::open(directory);
    for (const auto& name : checkpoint.names()) {
      const uq::TensorView view = checkpoint.tensor(name);
      // Only the shard inside the directory may be opened.
      if (checkpoint.file_of(name).path().parent_path().filename() != "checkpoint") {
        __builtin_trap();
      }
      (void)view.to_f32();
    }
    (void)checkpoint.total_bytes();
    (void)checkpoint.metadata();
  } catch (const uq::Error&) {
  }
  return 0;
}
