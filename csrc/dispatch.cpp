// The one place that chooses the micro-kernels.  At load time: the best ISA this CPU supports
// among those compiled (avx512 > avx2 > generic), unless TCONV_ISA=avx512|avx2|generic names
// one.  An unknown or unsupported TCONV_ISA does not fail the import: it prints a warning on
// stderr and falls back to the automatic choice.  set_isa() (tests, benchmarks) is strict and
// throws std::invalid_argument instead.
//
// Emulated ISAs ("avx512-emulated": an ISA's table over portable lanes) run on every CPU and
// come after "generic" in supported_isas(), so that the suites looping over it test them, but
// the automatic choice (the front) never takes them: only TCONV_ISA or set_isa() do.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "tconv/kernels.hpp"
#include "tconv/ukernels.hpp"

namespace tconv {
namespace {

bool cpu_has(const std::string& isa) {
  if (isa == "generic") return true;
  if (isa == "avx512-emulated") return avx512_emulated_kernels() != nullptr;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
#ifdef TCONV_HAVE_AVX2
  if (isa == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
#ifdef TCONV_HAVE_AVX512
  if (isa == "avx512")
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("fma");
#endif
#endif
  return false;
}

// Only called for an ISA that cpu_has(): the avx512 table's initialiser is itself compiled
// with AVX-512 flags.
const IsaKernels* table_for(const std::string& isa) {
  if (isa == "avx512") return avx512_kernels();
  if (isa == "avx512-emulated") return avx512_emulated_kernels();
  if (isa == "avx2") return avx2_kernels();
  return generic_kernels();
}

const IsaKernels* initial_table() {
  const std::vector<std::string> isas = supported_isas();
  if (const char* env = std::getenv("TCONV_ISA"); env != nullptr && *env != '\0') {
    for (const std::string& isa : isas)
      if (isa == env) return table_for(isa);
    std::fprintf(stderr,
                 "tconv: warning: TCONV_ISA=%s is not one of the ISAs this build supports on "
                 "this CPU; using %s\n",
                 env, isas.front().c_str());
  }
  return table_for(isas.front());
}

std::atomic<const IsaKernels*>& active() {
  static std::atomic<const IsaKernels*> table{initial_table()};
  return table;
}

}  // namespace

std::vector<std::string> supported_isas() {
  std::vector<std::string> out;
  for (const char* isa : {"avx512", "avx2", "generic", "avx512-emulated"})
    if (cpu_has(isa)) out.emplace_back(isa);
  return out;
}

std::string isa() { return active().load()->name; }

void set_isa(const std::string& name) {
  for (const std::string& isa : supported_isas()) {
    if (isa == name) {
      active().store(table_for(isa));
      return;
    }
  }
  throw std::invalid_argument("tconv: ISA '" + name +
                              "' is unknown or not supported on this CPU/build");
}

const IsaKernels* kernels_for(const std::string& name) {
  for (const std::string& isa : supported_isas())
    if (isa == name) return table_for(isa);
  return nullptr;
}

const IsaKernels& active_kernels() { return *active().load(); }

}  // namespace tconv
