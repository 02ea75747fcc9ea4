#pragma once
// Scans every floating-point value a model stores for NaN and infinity, as
// llama.cpp's --check-tensors does: float tensors, the float scales and biases
// of quantized layouts (their integer codes cannot be non-finite), and GGUF
// tensors decoded block by block. A model that holds one would otherwise only
// show it as NaN logits, or as tokens picked from them.
#include <cstdint>
#include <filesystem>

namespace uq {

class Checkpoint;
class GgufFile;

struct TensorCheckSummary {
  std::int64_t tensors = 0;  // tensors holding float values, all checked
  std::int64_t values = 0;
};

// `model`: a checkpoint directory or .safetensors file (Checkpoint::open), or a
// .gguf file. Throws uq::Error naming the file, the tensor and the first bad
// element (in file order): "<file>: tensor '<name>' holds nan at element 17".
TensorCheckSummary check_tensors_finite(const std::filesystem::path& model);
// The same over files already open (errors name each file's path or origin).
TensorCheckSummary check_tensors_finite(const Checkpoint& checkpoint);
TensorCheckSummary check_tensors_finite(const GgufFile& gguf);

}  // namespace uq
