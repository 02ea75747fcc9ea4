#pragma once
// UTF-8 helpers shared by the tokenizer stages: validation, code point
// iteration, encoding, and lossy decoding of arbitrary bytes.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace uq::utf8 {

// Byte offset of the first byte that does not start a valid UTF-8 sequence, or
// nullopt when the whole text is valid UTF-8 (overlongs and surrogates are invalid).
std::optional<std::size_t> find_invalid(std::string_view bytes);

// Decodes the code point starting at `pos` of VALID UTF-8 and moves `pos` past it.
char32_t next_code_point(std::string_view text, std::size_t& pos);

// Number of bytes of the sequence whose lead byte is `lead` (valid UTF-8 only).
std::size_t sequence_length(unsigned char lead);

void append(std::string& out, char32_t code_point);
std::string encode(char32_t code_point);

// Bytes to text, each maximal invalid subsequence replaced by U+FFFD (the
// behaviour of Rust's String::from_utf8_lossy, which the HF decoders use).
std::string from_bytes_lossy(std::string_view bytes);

}  // namespace uq::utf8
