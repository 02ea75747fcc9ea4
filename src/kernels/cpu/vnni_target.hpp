#pragma once
// Brackets the code of a file that is compiled for AVX-512 VNNI while the rest of the build
// targets AVX2: UQ_VNNI_TARGET_BEGIN after every #include that other files share (an inline
// function compiled for AVX-512 could otherwise be the copy the linker keeps for everyone),
// UQ_VNNI_TARGET_END at the end. The code inside runs only where best_dot_isa() found VNNI.
// _Pragma takes exactly one string literal, which must not be split.
// clang-format off
#if defined(__clang__)
#define UQ_VNNI_TARGET_BEGIN _Pragma("clang attribute push(__attribute__((target(\"avx512f,avx512bw,avx512vl,avx512vnni\"))), apply_to = function)")
#define UQ_VNNI_TARGET_END _Pragma("clang attribute pop")
#else
#define UQ_VNNI_TARGET_BEGIN _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512bw,avx512vl,avx512vnni\")")
#define UQ_VNNI_TARGET_END _Pragma("GCC pop_options")
#endif
// clang-format on
