#pragma once
// Reading the fields of tokenizer.json component specs. A field of the wrong
// JSON type throws nlohmann::json::exception, which Tokenizer::from_json
// reports with the file name.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace uq {

// `value` as T. An integral T needs a JSON integer in T's range: nlohmann
// would convert 1e300 or -1 with undefined or wrapping results.
template <class T>
T json_as(const nlohmann::json& value, std::string_view what) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (!value.is_number_integer()) fail(what, ": expected an integer, got ", value.dump());
    if (value.is_number_unsigned()) {
      const auto number = value.get<std::uint64_t>();
      if (!std::in_range<T>(number)) fail(what, ": ", number, " is out of range");
      return static_cast<T>(number);
    }
    const auto number = value.get<std::int64_t>();
    if (!std::in_range<T>(number)) fail(what, ": ", number, " is out of range");
    return static_cast<T>(number);
  } else {
    return value.get<T>();
  }
}

// spec[key] as T, or `fallback` when the key is absent or null.
template <class T>
T field_or(const nlohmann::json& spec, const char* key, T fallback) {
  const auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) return fallback;
  return json_as<T>(*it, key);
}

// spec[key] as T, or nullopt when the key is absent or null.
template <class T>
std::optional<T> optional_field(const nlohmann::json& spec, const char* key) {
  const auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) return std::nullopt;
  return json_as<T>(*it, key);
}

// spec[key] as T; fails naming `owner` when absent.
template <class T>
T required_field(const nlohmann::json& spec, const char* key, std::string_view owner) {
  const auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) fail(owner, ": missing field '", key, "'");
  return json_as<T>(*it, key);
}

// The "type" of a component spec; fails naming `owner` when absent.
inline std::string component_type(const nlohmann::json& spec, std::string_view owner) {
  if (!spec.is_object()) fail(owner, ": expected an object, got ", spec.dump());
  return required_field<std::string>(spec, "type", owner);
}

}  // namespace uq
