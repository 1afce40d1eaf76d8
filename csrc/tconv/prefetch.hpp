// Source lines fetched into the cache a share at a time while other work runs: byte ranges
// are queued, then each step(n) prefetches the next n 64-byte lines of them, in order.
#pragma once

#include <cstdint>
#include <vector>

namespace tconv {

class LineQueue {
 public:
  void clear() {
    ranges_.clear();
    range_ = 0;
    at_ = 0;
    lines_ = 0;
  }
  void add(const void* first, int64_t bytes) {
    if (bytes <= 0) return;
    ranges_.push_back({static_cast<const char*>(first), bytes});
    lines_ += (bytes + kLine - 1) / kLine + 1;  // + 1: a range need not start on a line
  }
  // The lines queued (an upper bound: what step() would take to fetch them all).
  int64_t lines() const { return lines_; }
  // Always inlined: GCC deems a function that only prefetches free of side effects and drops
  // the calls.
  inline __attribute__((always_inline)) void step(int64_t n) {
    for (; n > 0 && range_ < ranges_.size(); --n) {
      const Range& r = ranges_[range_];
      __builtin_prefetch(r.first + at_, 0, 3);
      at_ += kLine;
      if (at_ >= r.bytes) {
        ++range_;
        at_ = 0;
      }
    }
  }

 private:
  static constexpr int64_t kLine = 64;
  struct Range {
    const char* first;
    int64_t bytes;
  };
  std::vector<Range> ranges_;
  size_t range_ = 0;
  int64_t at_ = 0, lines_ = 0;
};

}  // namespace tconv
