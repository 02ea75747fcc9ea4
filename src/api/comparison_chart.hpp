#pragma once
// The chart of `uq bench --plot`: speed against accuracy (decode tokens/s vs
// perplexity, one series per backend and device) beside memory and size-on-disk bars.
#include <string>

#include "api/compare_backends.hpp"

namespace uq {

// A standalone SVG document; each series is a <g data-series="BACKEND (DEVICE)">.
std::string comparison_chart_svg(const BackendComparison& comparison);

}  // namespace uq
