#pragma once
// The per-module decisions of quantize_model, shared by the in-memory and the
// streaming paths so that both quantize (and report) every module alike.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "api/auto_backend.hpp"
#include "api/config.hpp"
#include "api/quantize.hpp"
#include "calibration/calibrate_model.hpp"

namespace uq {

class Backend;
class Weight;

// The backend and device `config` asks for, `auto` resolved by the rule
// table of api/auto_backend.hpp.
AutoChoice resolve_backend(const UnifiedQuantizationConfig& config);
// Records the choice in `report` (backend, backend_reason, device).
void apply_choice(const AutoChoice& choice, QuantizationReport& report);

// Adds a warning for each layer_bits/skip pattern that matches none of `paths`.
void warn_unmatched_patterns(const UnifiedQuantizationConfig& config,
                             const std::vector<std::string>& paths,
                             std::vector<std::string>& warnings);

// Bits for a module (0: keep float). A tied embedding also serves lm_head: the
// most specific pattern over both names decides, and a skip of either keeps it float.
int module_bits(const std::string& path, const std::vector<std::string>& tied_paths,
                const UnifiedQuantizationConfig& config);

// Quantizes `weight` of module `path` to `bits` (0: keeps it) with `backend`,
// appending its line (and a warning when the backend keeps it float) to
// `report`. Returns the weight the model should hold.
std::shared_ptr<Weight> quantize_module(const Backend& backend, const std::string& path,
                                        std::shared_ptr<Weight> weight, int bits,
                                        const UnifiedQuantizationConfig& config,
                                        QuantizationReport& report);

// The grid each decoder linear of a calibrated method (config.method) is
// quantized on with `backend`, or nullptr with a note (kept float, already
// quantized). `config` must outlive the returned function.
GridFor calibration_grids(const UnifiedQuantizationConfig& config, const std::string& backend);
CalibrationOptions calibration_options(const UnifiedQuantizationConfig& config);

// The report line of a module that calibration quantized to `bits`.
LayerQuantization calibrated_line(const CalibratedLayer& layer, int bits,
                                  const UnifiedQuantizationConfig& config);
// After quantize_module in a calibrated run: a module it quantized was
// rounded to nearest instead; its line says why (`calibrated`: the
// calibration's result for it, null when calibration does not cover it) and
// it is listed as not calibrated.
void note_round_to_nearest(const UnifiedQuantizationConfig& config,
                           const CalibratedLayer* calibrated, QuantizationReport& report);

}  // namespace uq
