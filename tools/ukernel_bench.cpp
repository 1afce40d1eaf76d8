// In-cache throughput of the active micro-kernels (data in L1/L2), per busy CPU-second.
//   g++ -O2 -std=c++17 -Icsrc tools/ukernel_bench.cpp build/libtconv_kernels.a -fopenmp \
//       -o /tmp/ukernel_bench && /tmp/ukernel_bench
#include <cstdio>
#include <ctime>
#include <vector>

#include "tconv/kernels.hpp"
#include "tconv/ukernels.hpp"

template <typename T>
void run(const tconv::GemmKernels<T>& k, const char* name) {
  const int64_t kc = 256;
  const int mr = k.mr, nr = k.nr;
  std::vector<T> a(static_cast<size_t>(kc * mr), T(0.5)), b(static_cast<size_t>(kc * nr), T(0.25));
  std::vector<T> c(static_cast<size_t>(mr * nr), T(0));
  const long calls = 400000;
  const std::clock_t c0 = std::clock();
  for (long i = 0; i < calls; ++i) k.fn[mr](kc, a.data(), b.data(), c.data(), nr, 1);
  const double cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;
  std::printf("%s %dx%d: %.1f GFLOP/s per busy core (c[0] = %g)\n", name, mr, nr,
              2.0 * calls * kc * mr * nr / cpu / 1e9, double(c[0]));
}

int main() {
  std::printf("isa %s\n", tconv::isa().c_str());
  run(tconv::active_kernels().f32, "f32_gemm");
  run(tconv::active_kernels().f64, "f64_gemm");
}
