#pragma once
// tokenizer.json "normalizer": NFC, NFD, NFKC, NFKD, Lowercase, StripAccents,
// Replace, Prepend, Strip and Sequence of those.
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace uq {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Rewrites valid UTF-8 `text` in place.
  virtual void normalize(std::string& text) const = 0;
};

// nullptr for a null spec (no normalization); fails on unsupported types.
std::unique_ptr<const Normalizer> make_normalizer(const nlohmann::json& spec);

}  // namespace uq
