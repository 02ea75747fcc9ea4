#pragma once
// One function per group of bindings; module.cpp calls them in order.
#include <pybind11/pybind11.h>

namespace uq::python {

namespace py = pybind11;

void bind_model(py::module_& m);
void bind_quantize(py::module_& m);
void bind_reports(py::module_& m);

}  // namespace uq::python
