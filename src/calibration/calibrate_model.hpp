#pragma once
// The calibrated methods over a whole model. GPTQ and AWQ walk the decoder
// one block at a time: the calibration windows are embedded, each block is
// calibrated on the hidden states that the already-quantized earlier blocks
// produce, and its quantized outputs become the next block's inputs (only
// one block of activations is held). HQQ needs no data and treats each
// linear on its own. Only the decoder blocks' linears are calibrated;
// embeddings and lm_head are left to the caller (round-to-nearest).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "calibration/calibrated_layer.hpp"

namespace uq {

class Model;

struct CalibrationOptions {
  std::string method;            // gptq | awq | hqq
  std::string calibration_data;  // text file (gptq, awq)
  int samples = 128;
  std::int64_t ctx = 256;
  std::uint64_t seed = 0;
  bool act_order = false;  // gptq
  // cpu | cuda | auto (calibration_device): where GPTQ runs; the other methods run on the CPU.
  std::string device = "cpu";
};

// The calibration windows of `options` drawn from the model's tokenization of
// calibration_data. Throws uq::Error naming the file or option that is unusable.
std::vector<std::vector<std::int32_t>> load_windows(const Model& model,
                                                    const CalibrationOptions& options);

// Where calibrate_blocks runs `options` on `model`: "cuda" for GPTQ with device "cuda", or
// "auto" when a GPU is usable and it has every layer's grid (kernels/cuda/gptq_cuda.hpp);
// else "cpu". Throws uq::Error for device "cuda" where the build has no CUDA or no GPU, for a
// method other than GPTQ, or naming a layer whose grid or options the GPU cannot run.
std::string calibration_device(const Model& model, const CalibrationOptions& options,
                               const GridFor& grid_for);

// Called once per decoder block, in order, with its seven linears' results
// (model order) once nothing reads that block's weights any more (the next
// block's inputs are computed): a streaming caller writes them out and drops
// the block's pages, so that one block is held at a time.
using BlockCalibrated =
    std::function<void(std::int64_t block, std::vector<CalibratedLayer> layers)>;

// Quantizes the decoder linears of `model` in place (each slot gets its
// format's Weight), block by block, handing each block to `done`. Throws
// uq::Error naming the calibration file or option that is unusable.
void calibrate_blocks(Model& model, const CalibrationOptions& options, const GridFor& grid_for,
                      const BlockCalibrated& done);

// calibrate_blocks collecting every block: one entry per decoder linear, in model order.
std::vector<CalibratedLayer> calibrate_model(Model& model, const CalibrationOptions& options,
                                             const GridFor& grid_for);

}  // namespace uq
