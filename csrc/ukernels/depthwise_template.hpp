// The depthwise micro-kernels (contracts in tconv/depthwise.hpp), written once over GCC
// vector types of BYTES bytes and a multiply-add policy, and instantiated by one translation
// unit per ISA with that ISA's flags (depthwise_<isa>.cpp), so the loops become that ISA's
// vector instructions.  The lane width never changes a result: every output has its own
// accumulator and the same sequence of multiply-adds in every lane, vector body or tail.
//
//   Fused:   std::fma, one rounding (avx2, avx512; avx512-emulated calls the same function
//            without ISA flags, hence gives avx512's results bit for bit)
//   Unfused: a * b + c, two roundings (generic; its TU is built with -ffp-contract=off)
//
// Include ONLY inside the anonymous namespace of a translation unit, after <cmath>.

struct FusedMadd {
  template <typename T>
  static T madd(T a, T b, T c) {
    return std::fma(a, b, c);
  }
};

struct UnfusedMadd {
  template <typename T>
  static T madd(T a, T b, T c) {
    return a * b + c;
  }
};

// acc[l] = madd(w, x[l], acc[l]) for every lane; a loop of its own, fully unrolled, so that gcc
// turns it into one vector instruction (inside dw_row's loops it left 16 float lanes scalar).
template <class Madd, typename V, typename T>
inline V madd_lanes(T w, V x, V acc) {
  constexpr int L = sizeof(V) / sizeof(T);
  V r;
#pragma GCC unroll 64
  for (int l = 0; l < L; ++l) r[l] = Madd::madd(w, x[l], acc[l]);
  return r;
}

template <typename T, int BYTES, class Madd>
void dw_row(const tconv::DwTerm<T>* terms, int64_t count, int64_t extent, const T* bias,
            T* out) {
  // blocks of two vectors: two independent accumulator chains hide the multiply-add latency
  typedef T V __attribute__((vector_size(BYTES)));
  constexpr int L = BYTES / static_cast<int>(sizeof(T));
  // [lo, hi): the outputs every term reads inside its row; the rest check each term
  int64_t lo = 0, hi = extent;
  for (int64_t t = 0; t < count; ++t) {
    lo = std::max(lo, -terms[t].off);
    hi = std::min(hi, terms[t].len - terms[t].off);
  }
  lo = std::min(lo, extent);
  hi = std::max(hi, lo);
  const auto checked = [&](int64_t j) {
    T acc = T(0);
    for (int64_t t = 0; t < count; ++t) {
      const int64_t i = j + terms[t].off;
      if (i >= 0 && i < terms[t].len) acc = Madd::madd(terms[t].w, terms[t].row[i], acc);
    }
    out[j] = bias != nullptr ? acc + *bias : acc;
  };
  for (int64_t j = 0; j < lo; ++j) checked(j);
  int64_t j = lo;
  for (; j + 2 * L <= hi; j += 2 * L) {
    V a0 = {}, a1 = {};
    for (int64_t t = 0; t < count; ++t) {
      const T wt = terms[t].w;
      const T* s = terms[t].row + terms[t].off + j;
      V x0, x1;
      std::memcpy(&x0, s, sizeof(V));
      std::memcpy(&x1, s + L, sizeof(V));
      a0 = madd_lanes<Madd>(wt, x0, a0);
      a1 = madd_lanes<Madd>(wt, x1, a1);
    }
    if (bias != nullptr) {
      a0 += *bias;
      a1 += *bias;
    }
    std::memcpy(out + j, &a0, sizeof(V));
    std::memcpy(out + j + L, &a1, sizeof(V));
  }
  // the last 1 .. 2L - 1 outputs: a vector, then one more ending at hi (overlapping outputs
  // already stored, which it recomputes to the same values), or scalars when hi - lo < L
  const auto one_vector = [&](int64_t j0) {
    V a = {};
    for (int64_t t = 0; t < count; ++t) {
      V x;
      std::memcpy(&x, terms[t].row + terms[t].off + j0, sizeof(V));
      a = madd_lanes<Madd>(terms[t].w, x, a);
    }
    if (bias != nullptr) a += *bias;
    std::memcpy(out + j0, &a, sizeof(V));
  };
  if (j + L <= hi) {
    one_vector(j);
    j += L;
  }
  if (j < hi && hi - lo >= L) {
    one_vector(hi - L);
    j = hi;
  }
  for (; j < hi; ++j) {
    T acc = T(0);
    for (int64_t t = 0; t < count; ++t)
      acc = Madd::madd(terms[t].w, terms[t].row[j + terms[t].off], acc);
    out[j] = bias != nullptr ? acc + *bias : acc;
  }
  for (j = std::max(j, hi); j < extent; ++j) checked(j);
}

template <typename M, int L, size_t... I>
constexpr M zip_mask(int half, std::index_sequence<I...>) {
  return M{(I % 2 == 0 ? half * L / 2 + int(I / 2) : L + half * L / 2 + int(I / 2))...};
}

template <typename M, size_t... I>
constexpr M pick_mask(int first, std::index_sequence<I...>) {
  return M{(first + 2 * int(I))...};
}

// The exponent bits of T (those of +Inf; all ones exactly for Inf and NaN).
template <typename T, typename I>
inline I exponent_bits() {
  const T inf = std::numeric_limits<T>::infinity();
  I e;
  std::memcpy(&e, &inf, sizeof(T));
  return e;
}

template <typename T>
inline bool nonfinite_value(T v) {
  using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  const I e = exponent_bits<T, I>();
  I b;
  std::memcpy(&b, &v, sizeof(T));
  return (b & e) == e;
}

// The forward's output row of stride 2 along x with both x phases: out[2j + r] =
// (sum over the terms of phase r, in order) + bias, as dw_row computes each phase (the
// same multiply-adds in the same order), but written interleaved from registers: every
// output of the row stored once, in full vectors.  Returns whether an output is Inf or NaN.
template <typename T, int BYTES, class Madd>
bool dw_row2(const tconv::DwTerm<T>* t0, int64_t n0, const tconv::DwTerm<T>* t1, int64_t n1,
             int64_t total, const T* bias, T* out) {
  typedef T V __attribute__((vector_size(BYTES)));
  constexpr int L = BYTES / static_cast<int>(sizeof(T));
  using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  typedef I M __attribute__((vector_size(BYTES)));  // lane integers: masks, exponent tests
  constexpr M lo_zip = zip_mask<M, L>(0, std::make_index_sequence<L>());
  constexpr M hi_zip = zip_mask<M, L>(1, std::make_index_sequence<L>());
  const int64_t e0 = (total + 1) / 2, e1 = total / 2;  // the phases' extents
  // [lo, hi): the j at which every term of both phases reads inside its row
  int64_t lo = 0, hi = e1;
  for (int64_t t = 0; t < n0; ++t) {
    lo = std::max(lo, -t0[t].off);
    hi = std::min(hi, t0[t].len - t0[t].off);
  }
  for (int64_t t = 0; t < n1; ++t) {
    lo = std::max(lo, -t1[t].off);
    hi = std::min(hi, t1[t].len - t1[t].off);
  }
  lo = std::min(lo, e0);
  hi = std::max(hi, lo);
  bool bad = false;
  const auto checked = [&](const tconv::DwTerm<T>* terms, int64_t count, int64_t j) {
    T acc = T(0);
    for (int64_t t = 0; t < count; ++t) {
      const int64_t i = j + terms[t].off;
      if (i >= 0 && i < terms[t].len) acc = Madd::madd(terms[t].w, terms[t].row[i], acc);
    }
    return bias != nullptr ? acc + *bias : acc;
  };
  const auto scalar = [&](int64_t j) {
    const T v0 = checked(t0, n0, j);
    out[2 * j] = v0;
    bad |= nonfinite_value(v0);
    if (j < e1) {
      const T v1 = checked(t1, n1, j);
      out[2 * j + 1] = v1;
      bad |= nonfinite_value(v1);
    }
  };
  for (int64_t j = 0; j < lo; ++j) scalar(j);
  M flags = {};
  const M exponent = M{} + exponent_bits<T, I>();
  const auto block = [&](int64_t j) {
    V a0 = {}, a1 = {};
    for (int64_t t = 0; t < n0; ++t) {
      V x;
      std::memcpy(&x, t0[t].row + t0[t].off + j, sizeof(V));
      a0 = madd_lanes<Madd>(t0[t].w, x, a0);
    }
    for (int64_t t = 0; t < n1; ++t) {
      V x;
      std::memcpy(&x, t1[t].row + t1[t].off + j, sizeof(V));
      a1 = madd_lanes<Madd>(t1[t].w, x, a1);
    }
    if (bias != nullptr) {
      a0 += *bias;
      a1 += *bias;
    }
    const V z0 = __builtin_shuffle(a0, a1, lo_zip), z1 = __builtin_shuffle(a0, a1, hi_zip);
    std::memcpy(out + 2 * j, &z0, sizeof(V));
    std::memcpy(out + 2 * j + L, &z1, sizeof(V));
    M b0, b1;
    std::memcpy(&b0, &z0, sizeof(V));
    std::memcpy(&b1, &z1, sizeof(V));
    flags |= ((b0 & exponent) == exponent) | ((b1 & exponent) == exponent);
  };
  int64_t j = lo;
  for (; j + L <= hi; j += L) block(j);
  if (j < hi && hi - lo >= L) {  // one more block ending at hi, over outputs already stored
    block(hi - L);
    j = hi;
  }
  for (int l = 0; l < L; ++l) bad |= flags[l] != 0;
  for (; j < e0; ++j) scalar(j);
  return bad;
}

// With STEP a compile-time constant the loops below vectorise as interleaving (shuffling)
// stores and loads; other steps take the run-time loop.
// acc[l] = madd(a[l], b[l], acc[l]) for every lane (see madd_lanes).
template <class Madd, typename V, typename T>
inline V madd_vv(V a, V b, V acc) {
  constexpr int L = sizeof(V) / sizeof(T);
  V r;
#pragma GCC unroll 64
  for (int l = 0; l < L; ++l) r[l] = Madd::madd(a[l], b[l], acc[l]);
  return r;
}

template <typename T, int BYTES, class Madd>
void dw_dot(const T* a, int64_t extent, const tconv::DwTerm<T>* terms, int64_t count, T* acc) {
  // the kDwDotLanes lanes as NV vectors of the ISA's width (a wider GCC vector type was
  // left partly scalar on the narrower ISAs)
  typedef T V __attribute__((vector_size(BYTES)));
  constexpr int L = BYTES / static_cast<int>(sizeof(T)), NV = tconv::kDwDotLanes / L;
  static_assert(NV * L == tconv::kDwDotLanes, "lanes must be whole vectors");
  for (int64_t t = 0; t < count; ++t) {
    const T* r = terms[t].row + terms[t].off;
    T* s = acc + t * tconv::kDwDotLanes;
    V v[NV];
    std::memcpy(v, s, sizeof(v));
    for (int64_t j = 0; j < extent; j += tconv::kDwDotLanes) {
#pragma GCC unroll 16
      for (int q = 0; q < NV; ++q) {
        V x, y;
        std::memcpy(&x, a + j + q * L, sizeof(V));
        std::memcpy(&y, r + j + q * L, sizeof(V));
        v[q] = madd_vv<Madd, V, T>(x, y, v[q]);
      }
    }
    std::memcpy(s, v, sizeof(v));
  }
}

template <int STEP, typename T>
void interleave_fixed(const T* const* phases, int64_t total, T* __restrict out) {
  const T* ph[STEP];
  for (int r = 0; r < STEP; ++r) ph[r] = phases[r];
  const int64_t full = total / STEP;
  for (int64_t u = 0; u < full; ++u)
#pragma GCC unroll 8
    for (int r = 0; r < STEP; ++r) out[u * STEP + r] = ph[r][u];
  for (int64_t o = full * STEP; o < total; ++o) out[o] = ph[o - full * STEP][full];
}

template <typename T>
void dw_interleave(const T* const* phases, int64_t step, int64_t total, T* out) {
  switch (step) {
    case 2: interleave_fixed<2>(phases, total, out); return;
    case 4: interleave_fixed<4>(phases, total, out); return;
    default:
      for (int64_t o = 0; o < total; ++o) out[o] = phases[o % step][o / step];
  }
}

template <int STEP, typename T>
void deinterleave_fixed(const T* __restrict in, int64_t total, T* const* phases) {
  T* ph[STEP];
  for (int r = 0; r < STEP; ++r) ph[r] = phases[r];
  const int64_t full = total / STEP;
  for (int64_t u = 0; u < full; ++u)
#pragma GCC unroll 8
    for (int r = 0; r < STEP; ++r) ph[r][u] = in[u * STEP + r];
  for (int64_t o = full * STEP; o < total; ++o) ph[o - full * STEP][full] = in[o];
}

// Step 2 in vectors: two loads, an even and an odd shuffle, two stores per 2 x L values.
template <typename T, int BYTES>
void deinterleave2(const T* in, int64_t total, T* const* phases) {
  typedef T V __attribute__((vector_size(BYTES)));
  constexpr int L = BYTES / static_cast<int>(sizeof(T));
  using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  typedef I M __attribute__((vector_size(BYTES)));
  constexpr M even = pick_mask<M>(0, std::make_index_sequence<L>());
  constexpr M odd = pick_mask<M>(1, std::make_index_sequence<L>());
  T* const p0 = phases[0];
  T* const p1 = phases[1];
  int64_t u = 0;
  for (; 2 * (u + L) <= total; u += L) {
    V v0, v1;
    std::memcpy(&v0, in + 2 * u, sizeof(V));
    std::memcpy(&v1, in + 2 * u + L, sizeof(V));
    const V e = __builtin_shuffle(v0, v1, even), o = __builtin_shuffle(v0, v1, odd);
    std::memcpy(p0 + u, &e, sizeof(V));
    std::memcpy(p1 + u, &o, sizeof(V));
  }
  for (int64_t o = 2 * u; o < total; ++o) phases[o % 2][o / 2] = in[o];
}

template <typename T, int BYTES>
void dw_deinterleave(const T* in, int64_t step, int64_t total, T* const* phases) {
  switch (step) {
    case 2: deinterleave2<T, BYTES>(in, total, phases); return;
    case 4: deinterleave_fixed<4>(in, total, phases); return;
    default:
      for (int64_t o = 0; o < total; ++o) phases[o % step][o / step] = in[o];
  }
}

template <typename T, int BYTES, class Madd>
tconv::DwKernels<T> dw_kernels() {
  tconv::DwKernels<T> k;
  k.row = dw_row<T, BYTES, Madd>;
  k.row2 = dw_row2<T, BYTES, Madd>;
  k.dot = dw_dot<T, BYTES, Madd>;
  k.interleave = dw_interleave<T>;
  k.deinterleave = dw_deinterleave<T, BYTES>;
  return k;
}

template <int BYTES, class Madd>
tconv::DepthwiseKernels dw_table() {
  return {dw_kernels<float, BYTES, Madd>(), dw_kernels<double, BYTES, Madd>()};
}
