// unified_quantization._core: the C++ library as a Python extension module.
// uq::Error becomes unified_quantization.UQError with the same message.
#include <pybind11/pybind11.h>

#include "bindings.hpp"
#include "core/error.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "unified_quantization: quantize, save, load and run language models (C++ core)";
  pybind11::register_exception<uq::Error>(m, "UQError", PyExc_RuntimeError);
  uq::python::bind_model(m);
  uq::python::bind_quantize(m);
  uq::python::bind_reports(m);
}
