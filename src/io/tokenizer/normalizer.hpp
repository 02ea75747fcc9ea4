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
  // Rewrites valid UTF-8 `text` in place. Clears `keeps_start` when it drops the
  // first character: HF then no longer sees the text as beginning where it did,
  // which Metaspace's "first" prepend scheme depends on.
  virtual void normalize(std::string& text, bool& keeps_start) const = 0;
  void normalize(std::string& text) const {
    bool keeps_start = true;
    normalize(text, keeps_start);
  }
};

// nullptr for a null spec (no normalization); fails on unsupported types.
std::unique_ptr<const Normalizer> make_normalizer(const nlohmann::json& spec);

}  // namespace uq
