#pragma once
// tokenizer.json "decoder": ByteLevel, ByteFallback, Fuse, Strip, Replace,
// Metaspace and Sequence of those. Like HF, a decoder maps the list of token
// strings to a new list; the final text is the concatenation.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace uq {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual std::vector<std::string> decode_chain(std::vector<std::string> tokens) const = 0;
};

// nullptr for a null spec (tokens are then joined with spaces, as HF does).
std::unique_ptr<const Decoder> make_decoder(const nlohmann::json& spec);

}  // namespace uq
