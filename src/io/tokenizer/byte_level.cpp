#include "io/tokenizer/byte_level.hpp"

#include <array>

#include "io/tokenizer/utf8.hpp"

namespace uq::byte_level {
namespace {

bool maps_to_itself(int byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) ||
         (byte >= 0xAE && byte <= 0xFF);
}

// Bytes that are not printable Latin-1 (controls, space, DEL, NBSP, soft hyphen).
constexpr std::size_t kRemappedBytes = 68;

struct Tables {
  std::array<char32_t, 256> chars{};
  std::array<std::string, 256> utf8{};
  std::array<std::uint8_t, kRemappedBytes> remapped{};  // byte behind U+0100 + index
  Tables() {
    std::size_t next_unused = 0;
    for (int byte = 0; byte < 256; ++byte) {
      if (maps_to_itself(byte)) {
        chars[byte] = static_cast<char32_t>(byte);
      } else {
        remapped[next_unused] = static_cast<std::uint8_t>(byte);
        chars[byte] = static_cast<char32_t>(0x100 + next_unused++);
      }
      utf8[byte] = utf8::encode(chars[byte]);
    }
  }
};

const Tables& tables() {
  static const Tables instance;
  return instance;
}

}  // namespace

char32_t byte_to_char(std::uint8_t byte) {
  return tables().chars[byte];
}

std::optional<std::uint8_t> char_to_byte(char32_t c) {
  if (c < 0x100 && maps_to_itself(static_cast<int>(c))) return static_cast<std::uint8_t>(c);
  if (c < 0x100 || c >= 0x100 + kRemappedBytes) return std::nullopt;
  return tables().remapped[c - 0x100];
}

std::string encode(std::string_view bytes) {
  const Tables& t = tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char byte : bytes) out.append(t.utf8[static_cast<std::uint8_t>(byte)]);
  return out;
}

std::optional<std::string> decode(std::string_view text) {
  std::string bytes;
  bytes.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto byte = char_to_byte(utf8::next_code_point(text, pos));
    if (!byte) return std::nullopt;
    bytes.push_back(static_cast<char>(*byte));
  }
  return bytes;
}

}  // namespace uq::byte_level
