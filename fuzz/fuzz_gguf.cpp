// libFuzzer target: arbitrary bytes as a GGUF file. Parsing must either
// succeed with every tensor inside the data section, or throw uq::Error; so
// must reading the llama config and tokenizer out of the metadata. Anything
// else (crash, sanitizer report, other exception) is a bug.
#include <cstdint>
#include <vector>

#include "core/error.hpp"
#include "io/formats/gguf_llama.hpp"
#include "io/formats/gguf_reader.hpp"
#include "io/tensor_check.hpp"
#include "quant/ggml_blocks.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto file =
        uq::GgufFile::parse({reinterpret_cast<const std::byte*>(data), size}, "fuzz.gguf");
    std::vector<float> row;
    for (const auto& tensor : file->tensors()) {
      const auto bytes = file->tensor_data(tensor);
      if (bytes.data() < reinterpret_cast<const std::byte*>(data) ||
          bytes.data() + bytes.size() > reinterpret_cast<const std::byte*>(data) + size) {
        __builtin_trap();  // a tensor outside the input
      }
      // Unpack the first row (bounded, so huge declared rows stay cheap).
      if (tensor.rows() > 0 && tensor.row_length() <= 4096) {
        row.resize(static_cast<std::size_t>(tensor.row_length()));
        uq::ggml_dequantize_row(tensor.type, bytes.data(), tensor.row_length(), row.data());
      }
    }
    try {
      (void)uq::check_tensors_finite(*file);  // --check-tensors: every tensor decoded
    } catch (const uq::Error&) {
    }
    try {
      (void)uq::hf_config_from_gguf(*file);
    } catch (const uq::Error&) {
    }
    (void)uq::tokenizer_json_from_gguf(*file);
  } catch (const uq::Error&) {
  }
  return 0;
}
