// Measures the machine's FMA peak: 12 independent accumulator chains per thread.
//   g++ -O3 -mavx2 -mfma -fopenmp tools/fma_peak.cpp -o /tmp/fma_peak && /tmp/fma_peak
#include <immintrin.h>
#include <omp.h>

#include <cstdio>
#include <ctime>
#include <initializer_list>

int main() {
  for (int threads : {1, 2}) {
    const long iters = 200000000;
    double t0 = omp_get_wtime();
    const std::clock_t c0 = std::clock();
    float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
      __m256 a[12];
      const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
      for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(float(i));
      for (long it = 0; it < iters; ++it)
        for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
      float out[8];
      __m256 s = a[0];
      for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
      _mm256_storeu_ps(out, s);
      sink += out[0];
    }
    const double dt = omp_get_wtime() - t0;
    const double cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;
    const double flop = threads * iters * 12.0 * 16.0;
    // Wall-clock rate, and the rate per CPU-second (per core; robust on a shared machine).
    std::printf("%d thread(s): %.1f GFLOP/s wall, %.1f GFLOP/s per busy core (sink %g)\n",
                threads, flop / dt / 1e9, flop / cpu / 1e9, sink);
  }
}
