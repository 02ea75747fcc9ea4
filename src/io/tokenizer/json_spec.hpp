#pragma once
// Reading the fields of tokenizer.json component specs. A field of the wrong
// JSON type throws nlohmann::json::exception, which Tokenizer::from_json
// reports with the file name.
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace uq {

// spec[key] as T, or `fallback` when the key is absent or null.
template <class T>
T field_or(const nlohmann::json& spec, const char* key, T fallback) {
  const auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) return fallback;
  return it->get<T>();
}

// spec[key] as T, or nullopt when the key is absent or null.
template <class T>
std::optional<T> optional_field(const nlohmann::json& spec, const char* key) {
  const auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) return std::nullopt;
  return it->get<T>();
}

// spec[key] as T; fails naming `owner` when absent.
template <class T>
T required_field(const nlohmann::json& spec, const char* key, std::string_view owner) {
  const auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) fail(owner, ": missing field '", key, "'");
  return it->get<T>();
}

// The "type" of a component spec; fails naming `owner` when absent.
inline std::string component_type(const nlohmann::json& spec, std::string_view owner) {
  if (!spec.is_object()) fail(owner, ": expected an object, got ", spec.dump());
  return required_field<std::string>(spec, "type", owner);
}

}  // namespace uq
