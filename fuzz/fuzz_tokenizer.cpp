// libFuzzer target: tokenizer.json text, optionally followed by a NUL byte and
// text to encode. Loading and encoding must succeed or throw uq::Error; what
// is encoded must decode without error.
#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "io/tokenizer/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto separator = input.find('\0');
  const std::string_view json = input.substr(0, separator);
  const std::string_view text = separator == std::string_view::npos
                                    ? std::string_view("Hello, world! 123  caf\xC3\xA9\n\t<s> x")
                                    : input.substr(separator + 1);
  try {
    const uq::Tokenizer tokenizer = uq::Tokenizer::from_json(json, "fuzz tokenizer.json");
    std::vector<std::int32_t> ids;
    try {
      ids = tokenizer.encode(text);
    } catch (const uq::Error&) {
      // Invalid UTF-8 input; any ids then come from the text's bytes below.
    }
    (void)tokenizer.decode(ids);
    (void)tokenizer.decode(ids, /*skip_special_tokens=*/true);
    // Arbitrary ids (unknown ones are skipped) taken from the text bytes.
    std::vector<std::int32_t> raw_ids;
    for (std::size_t i = 0; i + 1 < text.size() && raw_ids.size() < 64; i += 2) {
      raw_ids.push_back(static_cast<std::int32_t>(static_cast<unsigned char>(text[i]) << 8 |
                                                  static_cast<unsigned char>(text[i + 1])));
    }
    (void)tokenizer.decode(raw_ids);
    for (const std::int32_t id : raw_ids) {
      if (tokenizer.is_added(id) || id < tokenizer.vocab_size()) {
        try {
          (void)tokenizer.token_to_id(tokenizer.id_to_token(id));
        } catch (const uq::Error&) {
          // An id inside the range that no token has.
        }
      }
    }
  } catch (const uq::Error&) {
  }
  return 0;
}
