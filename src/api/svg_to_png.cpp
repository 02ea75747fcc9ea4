#include "api/svg_to_png.hpp"

#include <cmath>
#include <memory>

#include "core/error.hpp"

#if UQ_HAVE_RSVG
#include <cairo.h>
#include <librsvg/rsvg.h>
#endif

namespace uq {

#if UQ_HAVE_RSVG

namespace {

struct GErrorFree {
  void operator()(GError* error) const { g_error_free(error); }
};
struct ObjectUnref {
  void operator()(RsvgHandle* handle) const { g_object_unref(handle); }
};
struct SurfaceDestroy {
  void operator()(cairo_surface_t* surface) const { cairo_surface_destroy(surface); }
};
struct ContextDestroy {
  void operator()(cairo_t* context) const { cairo_destroy(context); }
};

cairo_status_t append_to_string(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

}  // namespace

bool png_rendering_available() {
  return true;
}

std::string svg_to_png(std::string_view svg, double scale) {
  if (!(scale > 0 && scale <= 16)) fail("svg_to_png: scale ", scale, " is outside (0, 16]");
  GError* raw_error = nullptr;
  std::unique_ptr<RsvgHandle, ObjectUnref> handle(rsvg_handle_new_from_data(
      reinterpret_cast<const guint8*>(svg.data()), svg.size(), &raw_error));
  std::unique_ptr<GError, GErrorFree> error(raw_error);
  if (!handle) fail("chart: the SVG does not parse: ", error ? error->message : "unknown error");

  double width = 0, height = 0;
  if (!rsvg_handle_get_intrinsic_size_in_pixels(handle.get(), &width, &height)) {
    fail("chart: the SVG has no width and height in pixels");
  }
  const int pixel_width = static_cast<int>(std::lround(width * scale));
  const int pixel_height = static_cast<int>(std::lround(height * scale));
  std::unique_ptr<cairo_surface_t, SurfaceDestroy> surface(
      cairo_image_surface_create(CAIRO_FORMAT_ARGB32, pixel_width, pixel_height));
  std::unique_ptr<cairo_t, ContextDestroy> context(cairo_create(surface.get()));
  const RsvgRectangle viewport{0, 0, static_cast<double>(pixel_width),
                               static_cast<double>(pixel_height)};
  raw_error = nullptr;
  const bool drawn =
      rsvg_handle_render_document(handle.get(), context.get(), &viewport, &raw_error);
  error.reset(raw_error);
  if (!drawn) fail("chart: rendering the SVG failed: ", error ? error->message : "unknown error");

  std::string png;
  if (cairo_surface_write_to_png_stream(surface.get(), append_to_string, &png) !=
      CAIRO_STATUS_SUCCESS) {
    fail("chart: encoding the PNG failed");
  }
  return png;
}

#else

bool png_rendering_available() {
  return false;
}

std::string svg_to_png(std::string_view, double) {
  fail(
      "chart: this build writes SVG charts only (it was built without librsvg; install "
      "librsvg2-dev and rebuild for PNG)");
}

#endif

}  // namespace uq
