// Measures the machine's FMA peak: 12 independent accumulator chains per thread, for each
// vector width the compiler targets (AVX2 always; AVX-512 too when built with -march=native
// on a machine that has it).
//   g++ -O3 -march=native -fopenmp tools/fma_peak.cpp -o /tmp/fma_peak && /tmp/fma_peak
#include <immintrin.h>
#include <omp.h>

#include <cstdio>
#include <ctime>
#include <initializer_list>

namespace {

struct Avx2 {
  using V = __m256;
  static constexpr int kLanes = 8;
  static constexpr const char* kName = "avx2   ";
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static float first(V a) { return _mm_cvtss_f32(_mm256_castps256_ps128(a)); }
};

#ifdef __AVX512F__
struct Avx512 {
  using V = __m512;
  static constexpr int kLanes = 16;
  static constexpr const char* kName = "avx512 ";
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static float first(V a) { return _mm512_cvtss_f32(a); }
};
#endif

template <class Isa>
void measure() {
  for (int threads : {1, 2}) {
    const long iters = 200000000;
    const double t0 = omp_get_wtime();
    const std::clock_t c0 = std::clock();
    float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
      typename Isa::V a[12];
      const typename Isa::V m = Isa::set1(0.999999f), c = Isa::set1(1e-7f);
      for (int i = 0; i < 12; ++i) a[i] = Isa::set1(float(i));
      for (long it = 0; it < iters; ++it)
        for (int i = 0; i < 12; ++i) a[i] = Isa::fma(a[i], m, c);
      float s = 0;
      for (int i = 0; i < 12; ++i) s += Isa::first(a[i]);
      sink += s;
    }
    const double dt = omp_get_wtime() - t0;
    const double cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;
    const double flop = threads * iters * 12.0 * 2.0 * Isa::kLanes;
    // Wall-clock rate, and the rate per CPU-second (per core; robust on a shared machine).
    std::printf("%s %d thread(s): %.1f GFLOP/s wall, %.1f GFLOP/s per busy core (sink %g)\n",
                Isa::kName, threads, flop / dt / 1e9, flop / cpu / 1e9, sink);
  }
}

}  // namespace

int main() {
  measure<Avx2>();
#ifdef __AVX512F__
  measure<Avx512>();
#endif
}
