#pragma once
// Unicode character classes with the meaning the HF tokenizers (Rust) give them.
namespace uq::char_class {

bool is_whitespace(char32_t c);       // Rust char::is_whitespace (White_Space property)
bool is_numeric(char32_t c);          // Rust char::is_numeric (Nd, Nl, No)
bool is_word(char32_t c);             // regex \w: letters, marks, Nd, Nl, Pc, joiners
bool is_nonspacing_mark(char32_t c);  // Mn, what StripAccents removes

}  // namespace uq::char_class
