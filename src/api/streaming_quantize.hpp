#pragma once
// Streaming quantization (memory_efficient): the float model is never held.
// Round-to-nearest reads `chunk_size` rows at a time (a whole matrix where the
// format does not split by rows) on a read-ahead thread; the calibrated
// methods (gptq, awq, hqq) run on a model over the memory-mapped shards one
// decoder block at a time, dropping each block's pages once it is written.
#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "api/config.hpp"
#include "api/quantize.hpp"

namespace uq {

class Model;

// Quantizes the Hugging Face model at `model_dir` into a model in memory, one
// float matrix at a time. `note`, when not empty, is the report's first warning
// (why streaming was chosen). The result equals quantize_model on the loaded model.
std::pair<std::shared_ptr<Model>, Quantizer> quantize_model_streaming(
    const std::filesystem::path& model_dir, UnifiedQuantizationConfig config,
    const std::string& note = {});

// Quantizes the Hugging Face model at `model_dir` straight into the backend's
// layout at `out_dir` (staged: it appears complete or not at all). Memory holds
// a few chunks of rows of float input plus one matrix's scales (bnb: one float
// matrix; calibrated methods: one decoder block and the calibration
// activations). The files equal quantize_model + save_model's byte for byte.
// Returns the config and report.
Quantizer quantize_to_directory(const std::filesystem::path& model_dir,
                                const std::filesystem::path& out_dir,
                                UnifiedQuantizationConfig config, const std::string& note = {});

}  // namespace uq
