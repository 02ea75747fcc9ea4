#pragma once
// What calibration did to one linear layer, and how it learns each layer's grid.
#include <functional>
#include <memory>
#include <string>

#include "calibration/quant_grid.hpp"

namespace uq {

class Weight;

struct CalibratedLayer {
  std::string path;
  std::shared_ptr<Weight> weight;      // null: not calibrated, `note` says why
  double reconstruction_error = -1.0;  // relative, see error_measure; -1: not measured
  // "output": ‖(W - Ŵ)X‖² / ‖WX‖² over the calibration inputs;
  // "weight": ‖W - Ŵ‖² / ‖W‖² (HQQ, which sees no data).
  std::string error_measure;
  std::string note;
};

// The grid a module is quantized on, or nullptr with `note` saying why it is
// not calibrated (kept in float, already quantized, no grid in the format).
using GridFor = std::function<std::unique_ptr<QuantGrid>(const std::string& path,
                                                         const Weight& weight, std::string& note)>;

}  // namespace uq
