// TCONV_ASSERT(cond): a precondition check that costs nothing in a release build.
//
// Active when NDEBUG is not defined (Debug builds) or when TCONV_ASSERTS is defined (CMake
// option TCONV_ASSERTS, which tools/sanitize.sh turns on): a failed check prints the condition
// and its place on stderr and aborts, so a caller that breaks a kernel's contract stops at the
// call instead of reading or writing out of bounds.  Otherwise the condition is not evaluated.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace tconv {

// Whether TCONV_ASSERT checks in this build (the binding reports it as _core._asserts()).
constexpr bool asserts_enabled() {
#if !defined(NDEBUG) || defined(TCONV_ASSERTS)
  return true;
#else
  return false;
#endif
}

[[noreturn]] inline void assert_failed(const char* cond, const char* file, int line,
                                       const char* func) {
  std::fprintf(stderr, "tconv: assertion failed: %s (%s:%d, in %s)\n", cond, file, line, func);
  std::fflush(stderr);
  std::abort();
}

}  // namespace tconv

#if !defined(NDEBUG) || defined(TCONV_ASSERTS)
#define TCONV_ASSERT(cond) \
  ((cond) ? static_cast<void>(0) : ::tconv::assert_failed(#cond, __FILE__, __LINE__, __func__))
#else
#define TCONV_ASSERT(cond) static_cast<void>(0)
#endif
