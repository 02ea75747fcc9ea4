#pragma once
// `uq export MODEL --format mlx|quanto|bnb|custom -o DIR`: the model as it is loaded, in another
// backend's native directory layout, nothing re-quantized: each quantized module is written in
// that layout's form of its codes (an error names the first module the layout cannot hold, e.g.
// mlx's 4-bit group 64 in quanto, whose group for that width is 128), float modules as float.
// A quanto qint4 model read by mlx-lm, an mlx model read by optimum-quanto, ... For another
// bit width or format, `uq quantize` from the float model.
#include <string>

namespace uq::cli {

// The --format names this export writes ("mlx, quanto, bnb, custom").
std::string layout_export_formats();
bool is_layout_export_format(const std::string& format);

// Throws uq::Error naming the option, file or module at fault; writes nothing then.
void export_layout(const std::string& model_path, const std::string& format,
                   const std::string& output, bool json);

}  // namespace uq::cli
