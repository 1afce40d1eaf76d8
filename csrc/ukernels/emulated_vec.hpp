// A portable W-lane vector with the semantics of a SIMD register, for "<isa>-emulated" builds
// of an ISA's kernel table (see avx512_emulated.cpp, docs/isa.md): every operation works lane by
// lane exactly as the hardware instruction does, so the emulated kernels give the real ones'
// results bit for bit.  fma is std::fma (one rounding, as vfmadd); the translation unit is
// compiled with -ffp-contract=off so the compiler fuses nothing else.
//
// Include ONLY inside the anonymous namespace of a translation unit (as gemm_template.hpp),
// after <cmath>.

template <typename TT, int W>
struct EmulatedOps {
  using T = TT;
  struct V {
    T lane[W];
  };
  static constexpr int kWidth = W;
  // Lanes live in memory anyway: the kernels' rarely run paths may loop rather than unroll
  // (gemm_template.hpp's store_epilogue), which keeps this unit, and its sanitizer build, small.
  static constexpr bool kEmulated = true;
  static V zero() {
    V r;
    for (int l = 0; l < W; ++l) r.lane[l] = T(0);
    return r;
  }
  static V load(const T* p) {
    V r;
    for (int l = 0; l < W; ++l) r.lane[l] = p[l];
    return r;
  }
  static V broadcast(const T* p) {
    V r;
    for (int l = 0; l < W; ++l) r.lane[l] = *p;
    return r;
  }
  static V fma(const V& a, const V& b, const V& c) {
    V r;
    for (int l = 0; l < W; ++l) r.lane[l] = std::fma(a.lane[l], b.lane[l], c.lane[l]);
    return r;
  }
  static V add(const V& a, const V& b) {
    V r;
    for (int l = 0; l < W; ++l) r.lane[l] = a.lane[l] + b.lane[l];
    return r;
  }
  static void store(T* p, const V& v) {
    for (int l = 0; l < W; ++l) p[l] = v.lane[l];
  }
  // v[l].lane[t] becomes v[t].lane[l] (the AVX-512 float table's shuffle network).
  static void transpose16(V (&v)[16]) {
    static_assert(W == 16, "transpose16 moves 16 x 16 lanes");
    transpose_square(v);
  }
  // The same for 8 vectors of 8 lanes (the AVX-512 double table's shuffle network).
  static void transpose8(V (&v)[8]) {
    static_assert(W == 8, "transpose8 moves 8 x 8 lanes");
    transpose_square(v);
  }

 private:
  // Both transposes above: N vectors of N lanes (N == W), through a copy.
  template <int N>
  static void transpose_square(V (&v)[N]) {
    V t[N];
    for (int r = 0; r < N; ++r)
      for (int l = 0; l < N; ++l) t[l].lane[r] = v[r].lane[l];
    for (int r = 0; r < N; ++r) v[r] = t[r];
  }
};
