#pragma once
// Values crossing the Python boundary: JSON objects as dicts, id sequences
// from numpy arrays or lists, logits as numpy float32 arrays.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

namespace uq::python {

namespace py = pybind11;

py::object to_python(const nlohmann::json& value);
nlohmann::json to_json(const py::handle& value);

// Token ids as int32 rows: a 1-D sequence is one row, a 2-D array [batch,
// sequence] one row per batch entry. Throws ValueError for other shapes.
std::vector<std::vector<std::int32_t>> id_rows(const py::handle& ids, bool& batched);

// A float32 array of `shape` holding `values` (moved into the array's memory).
py::array_t<float> float_array(std::vector<float> values, std::vector<py::ssize_t> shape);

}  // namespace uq::python
