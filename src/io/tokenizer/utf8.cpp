#include "io/tokenizer/utf8.hpp"

namespace uq::utf8 {
namespace {

// One step of UTF-8 validation at `pos`: the length of the valid sequence there,
// or (valid = false) the length of the maximal invalid subpart to replace.
struct Step {
  bool valid;
  std::size_t length;
};

Step step_at(std::string_view bytes, std::size_t pos) {
  const auto lead = static_cast<unsigned char>(bytes[pos]);
  if (lead < 0x80) return {true, 1};
  std::size_t continuation_bytes = 0;
  unsigned char second_low = 0x80;
  unsigned char second_high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    continuation_bytes = 1;
  } else if (lead == 0xE0) {
    continuation_bytes = 2;
    second_low = 0xA0;  // no overlongs
  } else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
    continuation_bytes = 2;
  } else if (lead == 0xED) {
    continuation_bytes = 2;
    second_high = 0x9F;  // no surrogates
  } else if (lead == 0xF0) {
    continuation_bytes = 3;
    second_low = 0x90;
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    continuation_bytes = 3;
  } else if (lead == 0xF4) {
    continuation_bytes = 3;
    second_high = 0x8F;  // nothing above U+10FFFF
  } else {
    return {false, 1};
  }
  for (std::size_t k = 1; k <= continuation_bytes; ++k) {
    if (pos + k >= bytes.size()) return {false, k};
    const auto byte = static_cast<unsigned char>(bytes[pos + k]);
    const unsigned char low = k == 1 ? second_low : 0x80;
    const unsigned char high = k == 1 ? second_high : 0xBF;
    if (byte < low || byte > high) return {false, k};
  }
  return {true, continuation_bytes + 1};
}

}  // namespace

std::optional<std::size_t> find_invalid(std::string_view bytes) {
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    if (static_cast<unsigned char>(bytes[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const Step step = step_at(bytes, pos);
    if (!step.valid) return pos;
    pos += step.length;
  }
  return std::nullopt;
}

std::size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

char32_t next_code_point(std::string_view text, std::size_t& pos) {
  const auto lead = static_cast<unsigned char>(text[pos]);
  const std::size_t length = sequence_length(lead);
  static constexpr unsigned char kLeadMask[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
  char32_t code_point = lead & kLeadMask[length];
  for (std::size_t k = 1; k < length; ++k) {
    code_point = (code_point << 6) | (static_cast<unsigned char>(text[pos + k]) & 0x3Fu);
  }
  pos += length;
  return code_point;
}

void append(std::string& out, char32_t code_point) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

std::string encode(char32_t code_point) {
  std::string out;
  append(out, code_point);
  return out;
}

std::string from_bytes_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const Step step = step_at(bytes, pos);
    if (step.valid) {
      out.append(bytes.substr(pos, step.length));
    } else {
      append(out, U'\uFFFD');
    }
    pos += step.length;
  }
  return out;
}

}  // namespace uq::utf8
