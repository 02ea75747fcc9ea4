#pragma once
// The GPT-2 byte <-> unicode map: every byte gets a printable character so that
// BPE can work on text; printable Latin-1 bytes map to themselves, the others to
// U+0100 upwards in byte order.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace uq::byte_level {

char32_t byte_to_char(std::uint8_t byte);
std::optional<std::uint8_t> char_to_byte(char32_t c);

// Each byte of `bytes` replaced by the UTF-8 of its character.
std::string encode(std::string_view bytes);

// The bytes behind `text` if every character of it is in the map.
std::optional<std::string> decode(std::string_view text);

}  // namespace uq::byte_level
