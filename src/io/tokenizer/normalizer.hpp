#pragma once
// tokenizer.json "normalizer": NFC, NFD, NFKC, NFKD, Lowercase, StripAccents,
// Replace, Prepend, Strip and Sequence of those.
#include <cstddef>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace uq {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Rewrites valid UTF-8 `text` in place. `start_bytes` is the length of the
  // leading part of `text` that HF aligns with the start of the original text
  // (initially its first character); normalizers keep it up to date because
  // Metaspace's "first" prepend scheme depends on it.
  virtual void normalize(std::string& text, std::size_t& start_bytes) const = 0;
  void normalize(std::string& text) const {
    std::size_t start_bytes = 0;
    normalize(text, start_bytes);
  }
};

// nullptr for a null spec (no normalization); fails on unsupported types.
std::unique_ptr<const Normalizer> make_normalizer(const nlohmann::json& spec);

}  // namespace uq
