#include "calibration/calibrate_model.hpp"

#include <fstream>
#include <sstream>

#include "calibration/awq_block.hpp"
#include "calibration/block_linears.hpp"
#include "calibration/calibration_windows.hpp"
#include "calibration/gptq.hpp"
#include "calibration/hessian.hpp"
#include "calibration/hqq.hpp"
#include "core/error.hpp"
#include "core/progress.hpp"
#include "io/tokenizer/tokenizer.hpp"
#include "model/decoder.hpp"
#include "model/device_placement.hpp"

#if UQ_HAVE_CUDA
#include "kernels/cuda/gptq_blocks_cuda.hpp"
#include "kernels/cuda/gptq_cuda.hpp"
#endif

namespace uq {

std::vector<std::vector<std::int32_t>> load_windows(const Model& model,
                                                    const CalibrationOptions& options) {
  if (options.calibration_data.empty()) {
    fail("method '", options.method, "' needs calibration_data (--calibration-data FILE)");
  }
  std::ifstream file(options.calibration_data, std::ios::binary);
  if (!file) fail(options.calibration_data, ": cannot read the calibration data");
  std::stringstream text;
  text << file.rdbuf();
  if (!model.tokenizer()) fail("method '", options.method, "': the model has no tokenizer");
  if (options.ctx > model.config().max_position_embeddings) {
    fail("calibration_ctx ", options.ctx, " exceeds max_position_embeddings (",
         model.config().max_position_embeddings, ")");
  }
  const auto ids = model.tokenizer()->encode(text.str());
  return calibration_windows(ids, options.samples, options.ctx, options.seed,
                             options.calibration_data);
}

namespace {

GptqOptions gptq_options(const CalibrationOptions& options) {
  GptqOptions gptq;
  gptq.act_order = options.act_order;
  return gptq;
}

// Empty when the GPU runs GPTQ on every calibrated linear of `model`, else why not.
std::string gpu_gptq_refusal(const Model& model, const CalibrationOptions& options,
                             const GridFor& grid_for) {
#if UQ_HAVE_CUDA
  const GptqOptions gptq = gptq_options(options);
  const auto& layers = model.layers();
  for (std::size_t b = 0; b < layers.size(); ++b) {
    for (const auto& linear : block_linears()) {
      const std::string path = linear_path(static_cast<std::int64_t>(b), linear);
      std::string note;
      const auto grid = grid_for(path, *(layers[b].*linear.member), note);
      if (!grid) continue;
      if (std::string reason = cuda::gptq_cuda_unsupported_reason(*grid, gptq); !reason.empty())
        return path + ": " + reason;
    }
  }
  return {};
#else
  (void)model, (void)options, (void)grid_for;
  return "this build has no CUDA";
#endif
}

// GPTQ on one block: the linears sharing an input are quantized together,
// in model order, each group from inputs that the block's already-quantized
// linears produce.
std::vector<CalibratedLayer> gptq_block(Model& model, std::int64_t index, const BlockInputs& inputs,
                                        const GridFor& grid_for, const GptqOptions& options,
                                        Progress& progress) {
  const auto& linears = block_linears();
  std::vector<CalibratedLayer> results(linears.size());
  DecoderLayer& layer = model.layer(index);
  for (const auto& members : shared_input_groups()) {
    std::vector<std::unique_ptr<QuantGrid>> grids;
    for (const int m : members) {
      auto& result = results[static_cast<std::size_t>(m)];
      result.path = linear_path(index, linears[static_cast<std::size_t>(m)]);
      grids.push_back(grid_for(result.path, *(layer.*linears[static_cast<std::size_t>(m)].member),
                               result.note));
    }
    const LinearMember first = linears[static_cast<std::size_t>(members.front())].member;
    HessianAccumulator accumulator((layer.*first)->in_features());
    inputs.run(
        model, index,
        {{first, [&accumulator](const float* x, std::int64_t rows) { accumulator.add(x, rows); }}});
    const std::vector<double> hessian = accumulator.hessian();
    for (std::size_t k = 0; k < members.size(); ++k) {
      auto& result = results[static_cast<std::size_t>(members[k])];
      progress.advance(0, result.path);
      auto& slot = layer.*linears[static_cast<std::size_t>(members[k])].member;
      if (grids[k]) {
        const std::vector<float> weights = float_matrix(*slot);
        const QuantizedMatrix quantized = gptq_quantize(
            weights.data(), slot->out_features(), slot->in_features(), hessian, *grids[k], options);
        const auto values = quantized.dequantize();
        result.reconstruction_error = relative_output_error(
            weights.data(), values.data(), slot->out_features(), slot->in_features(), hessian);
        result.error_measure = "output";
        result.weight = grids[k]->build(quantized, result.path + ".weight");
        slot = result.weight;
      }
      progress.advance();
    }
  }
  return results;
}

std::vector<CalibratedLayer> hqq_block(Model& model, std::int64_t index, const GridFor& grid_for,
                                       Progress& progress) {
  const auto& linears = block_linears();
  std::vector<CalibratedLayer> results;
  DecoderLayer& layer = model.layer(index);
  for (const auto& linear : linears) {
    CalibratedLayer result;
    result.path = linear_path(index, linear);
    progress.advance(0, result.path);
    auto& slot = layer.*linear.member;
    const auto grid = grid_for(result.path, *slot, result.note);
    if (grid && !grid->affine()) {
      result.note = "hqq refines affine formats only; " + grid->describe() + " is symmetric";
    } else if (grid) {
      const std::vector<float> weights = float_matrix(*slot);
      const QuantizedMatrix quantized =
          hqq_quantize(weights.data(), slot->out_features(), slot->in_features(), *grid);
      const auto values = quantized.dequantize();
      double error = 0.0, norm = 0.0;
      for (std::size_t i = 0; i < values.size(); ++i) {
        error += (weights[i] - values[i]) * static_cast<double>(weights[i] - values[i]);
        norm += weights[i] * static_cast<double>(weights[i]);
      }
      result.reconstruction_error = norm > 0.0 ? error / norm : 0.0;
      result.error_measure = "weight";
      result.weight = grid->build(quantized, result.path + ".weight");
      slot = result.weight;
    }
    results.push_back(std::move(result));
    progress.advance();
  }
  return results;
}

}  // namespace

std::string calibration_device(const Model& model, const CalibrationOptions& options,
                               const GridFor& grid_for) {
  if (options.device != "cuda" && options.device != "auto") {
    check_device_option(options.device);
    return "cpu";
  }
  if (options.method != "gptq") {
    if (options.device == "cuda") {
      fail("--device cuda: only gptq calibrates on the GPU; '", options.method,
           "' runs on the CPU (--device cpu)");
    }
    return "cpu";
  }
  if (options.device == "auto") {
    return cuda_available() && gpu_gptq_refusal(model, options, grid_for).empty() ? "cuda" : "cpu";
  }
  check_device_option(options.device);  // names a build without CUDA, or no GPU
  if (const std::string refusal = gpu_gptq_refusal(model, options, grid_for); !refusal.empty())
    fail("gptq --device cuda: ", refusal);
  return "cuda";
}

void calibrate_blocks(Model& model, const CalibrationOptions& options, const GridFor& grid_for,
                      const BlockCalibrated& done) {
  if (calibration_device(model, options, grid_for) == "cuda") {
#if UQ_HAVE_CUDA
    cuda::gptq_calibrate_blocks(model, load_windows(model, options), grid_for,
                                gptq_options(options), done);
    return;
#endif
  }
  const std::int64_t blocks = model.config().num_hidden_layers;
  const auto linears = static_cast<std::int64_t>(block_linears().size());
  if (options.method == "hqq") {
    Progress progress("hqq", blocks * linears);
    for (std::int64_t b = 0; b < blocks; ++b) done(b, hqq_block(model, b, grid_for, progress));
    return;
  }
  if (options.method != "gptq" && options.method != "awq") {
    fail("calibration method '", options.method, "' is unknown (known: gptq, awq, hqq)");
  }
  BlockInputs inputs(model, load_windows(model, options));
  Progress progress(options.method, blocks * linears);
  const GptqOptions gptq = gptq_options(options);
  for (std::int64_t b = 0; b < blocks; ++b) {
    std::vector<CalibratedLayer> block;
    if (options.method == "gptq") {
      block = gptq_block(model, b, inputs, grid_for, gptq, progress);
    } else {
      progress.advance(0, "model.layers." + std::to_string(b));
      block = awq_block(model, b, inputs, grid_for);
      progress.advance(linears);
    }
    if (b + 1 < blocks) inputs.advance(model, b);
    done(b, std::move(block));
  }
}

std::vector<CalibratedLayer> calibrate_model(Model& model, const CalibrationOptions& options,
                                             const GridFor& grid_for) {
  std::vector<CalibratedLayer> results;
  calibrate_blocks(model, options, grid_for,
                   [&results](std::int64_t, std::vector<CalibratedLayer> block) {
                     for (auto& layer : block) results.push_back(std::move(layer));
                   });
  return results;
}

}  // namespace uq
