#pragma once
// Rasterizes an SVG document (the `uq bench` chart) into PNG bytes with
// librsvg and cairo, so that the PNG chart is the SVG chart, pixel for pixel,
// rather than a second drawing of it.
#include <string>
#include <string_view>

namespace uq {

// False when the library was built without librsvg (then svg_to_png throws).
bool png_rendering_available();

// The PNG of `svg` at `scale` times its width/height (2 = sharp on high-DPI
// screens), on the SVG's own background. Throws uq::Error when the SVG does
// not parse or the build lacks librsvg.
std::string svg_to_png(std::string_view svg, double scale = 2.0);

}  // namespace uq
