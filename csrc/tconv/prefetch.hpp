// Source lines fetched into the cache: at once (prefetch_bytes), or a share at a time while
// other work runs (LineQueue: byte ranges are queued, then each step(n) prefetches the next n
// 64-byte lines of them, in order).  Prefetches only: no value depends on them.
#pragma once

#include <cstdint>
#include <vector>

namespace tconv {

constexpr int64_t kCacheLine = 64;  // bytes of a cache line

// The cache line holding byte p (an address, which may lie before p's array: it is only
// prefetched), and the lines from it to the end of [p, p + bytes).
inline const char* line_of(const void* p) {
  return reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) &
                                       ~uintptr_t(kCacheLine - 1));
}
inline int64_t lines_of(const void* p, int64_t bytes) {
  const auto into = int64_t(reinterpret_cast<uintptr_t>(p) & uintptr_t(kCacheLine - 1));
  return (into + bytes + kCacheLine - 1) / kCacheLine;
}

// Prefetches each line of [first, first + bytes): into every level (kLocality 3, prefetcht0)
// or from L2 on (2, prefetcht1); kWrite: for writing.  Always inlined: GCC deems a function
// that only prefetches free of side effects and drops the calls.
template <bool kWrite = false, int kLocality = 3>
inline __attribute__((always_inline)) void prefetch_bytes(const void* first, int64_t bytes) {
  if (bytes <= 0) return;
  const char* line = line_of(first);
  for (int64_t n = lines_of(first, bytes); n > 0; --n, line += kCacheLine)
    __builtin_prefetch(line, kWrite ? 1 : 0, kLocality);
}

class LineQueue {
 public:
  void clear() {
    ranges_.clear();
    range_ = 0;
    at_ = 0;
    lines_ = 0;
  }
  // Every line of [first, first + bytes) (none if bytes <= 0).
  void add(const void* first, int64_t bytes) {
    if (bytes <= 0) return;
    const int64_t n = lines_of(first, bytes);
    ranges_.push_back({line_of(first), n});
    lines_ += n;
  }
  // The lines queued: what step() takes to fetch them all.
  int64_t lines() const { return lines_; }
  // Always inlined (see prefetch_bytes).
  inline __attribute__((always_inline)) void step(int64_t n) {
    for (; n > 0 && range_ < ranges_.size(); --n) {
      const Range& r = ranges_[range_];
      __builtin_prefetch(r.first + at_ * kCacheLine, 0, 3);
      if (++at_ == r.lines) {
        ++range_;
        at_ = 0;
      }
    }
  }

 private:
  struct Range {
    const char* first;  // its first line
    int64_t lines;
  };
  std::vector<Range> ranges_;
  size_t range_ = 0;
  int64_t at_ = 0, lines_ = 0;
};

}  // namespace tconv
