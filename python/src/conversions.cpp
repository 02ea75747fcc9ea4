#include "conversions.hpp"

#include <memory>
#include <string>

namespace uq::python {

py::object to_python(const nlohmann::json& value) {
  return py::module_::import("json").attr("loads")(value.dump());
}

nlohmann::json to_json(const py::handle& value) {
  const std::string text = py::str(py::module_::import("json").attr("dumps")(value));
  return nlohmann::json::parse(text);
}

std::vector<std::vector<std::int32_t>> id_rows(const py::handle& ids, bool& batched) {
  const auto array =
      py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(ids);
  if (!array) throw py::value_error("input_ids: expected a sequence of token ids");
  if (array.ndim() != 1 && array.ndim() != 2) {
    throw py::value_error("input_ids: expected shape [sequence] or [batch, sequence], got " +
                          std::to_string(array.ndim()) + " dimensions");
  }
  batched = array.ndim() == 2;
  const py::ssize_t count = batched ? array.shape(0) : 1;
  const py::ssize_t length = array.shape(array.ndim() - 1);
  std::vector<std::vector<std::int32_t>> rows(static_cast<std::size_t>(count));
  const std::int64_t* data = array.data();
  for (py::ssize_t r = 0; r < count; ++r) {
    auto& row = rows[static_cast<std::size_t>(r)];
    row.reserve(static_cast<std::size_t>(length));
    for (py::ssize_t i = 0; i < length; ++i) {
      const std::int64_t id = data[r * length + i];
      if (id < INT32_MIN || id > INT32_MAX) {
        throw py::value_error("input_ids: id " + std::to_string(id) + " out of range");
      }
      row.push_back(static_cast<std::int32_t>(id));
    }
  }
  return rows;
}

py::array_t<float> float_array(std::vector<float> values, std::vector<py::ssize_t> shape) {
  auto owner = std::make_unique<std::vector<float>>(std::move(values));
  float* data = owner->data();
  py::capsule release(owner.get(), [](void* p) { delete static_cast<std::vector<float>*>(p); });
  owner.release();
  return py::array_t<float>(shape, data, release);
}

}  // namespace uq::python
