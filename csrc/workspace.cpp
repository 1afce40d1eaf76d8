// Scratch memory kept between calls (tconv/workspace.hpp).
//
// Every call allocates its workspace (packed weights and panels, bands, partial sums, the
// batch-inner copies) and frees it on return.  glibc gives large freed blocks back to the
// kernel (munmap above its mmap threshold, heap trimming below), so the next call faults
// every page in again: DCGAN 512->256's forward took ~500 page faults and 1-1.5 ms of system
// time per 25-30 ms call on 2 threads (docs/perf-log.md).  So each thread keeps the blocks it
// frees, up to kKeepBlocks of them and kept_limit() bytes, and takes the smallest fitting one
// on its next acquire: a steady sequence of calls reuses the same pages.
//
// Kept blocks are listed in one registry so that scratch_free_kept (tconv.empty_cache) frees
// every thread's, the OpenMP workers' included.  Locks: the registry's, then a thread's own
// (taken by its acquire/release, uncontended but for a concurrent scratch_free_kept); fork()
// takes them all first (pthread_atfork) so that a child never inherits one held.
#include <pthread.h>

#include <algorithm>
#include <cstring>
#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "tconv/workspace.hpp"

namespace tconv {
namespace {

// Blocks a thread keeps at most (a call holds a few Scratch buffers per thread).
constexpr std::size_t kKeepBlocks = 16;
// Default of TCONV_SCRATCH_CACHE_BYTES: bytes a thread keeps at most.
constexpr std::size_t kDefaultKeepBytes = std::size_t(256) << 20;
// A kept block serves a request of at least 1/kMaxSlack of its size, so a small buffer never
// takes (and holds) a large block.
constexpr std::size_t kMaxSlack = 4;
// Allocation granularity: 64 bytes (cache lines), whole pages from kPageFrom bytes on, so
// blocks of nearly the same size are interchangeable.
constexpr std::size_t kLine = 64;
constexpr std::size_t kPage = 4096;
constexpr std::size_t kPageFrom = 64 * 1024;

std::size_t kept_limit() {
  static const std::size_t limit = [] {
    const char* text = std::getenv("TCONV_SCRATCH_CACHE_BYTES");
    if (text == nullptr || *text == '\0') return kDefaultKeepBytes;
    try {
      const long long v = std::stoll(text);
      return v < 0 ? std::size_t(0) : static_cast<std::size_t>(v);
    } catch (const std::exception&) {
      return kDefaultKeepBytes;
    }
  }();
  return limit;
}

struct Block {
  void* p;
  std::size_t bytes;
};

struct ThreadBlocks;

struct Registry {
  std::mutex mu;
  std::vector<ThreadBlocks*> all;
};

// Never destroyed: threads may exit (and unregister) after static destruction began.
Registry& registry() {
  static Registry* const r = new Registry;
  return *r;
}

// The blocks one thread keeps, least recently released first.
struct ThreadBlocks {
  std::mutex mu;
  std::vector<Block> kept;
  std::size_t bytes = 0;

  ThreadBlocks() {
    Registry& r = registry();
    const std::lock_guard<std::mutex> lock(r.mu);
    r.all.push_back(this);
  }
  ~ThreadBlocks() {
    {
      Registry& r = registry();
      const std::lock_guard<std::mutex> lock(r.mu);
      r.all.erase(std::find(r.all.begin(), r.all.end(), this));
    }
    for (const Block& b : kept) std::free(b.p);
  }
  ThreadBlocks(const ThreadBlocks&) = delete;
  ThreadBlocks& operator=(const ThreadBlocks&) = delete;

  // Frees the oldest blocks until at most `count` blocks and `limit` bytes are kept.
  void trim(std::size_t count, std::size_t limit) {
    std::size_t drop = 0, left = bytes;
    while (drop < kept.size() && (kept.size() - drop > count || left > limit)) {
      left -= kept[drop].bytes;
      std::free(kept[drop].p);
      ++drop;
    }
    kept.erase(kept.begin(), kept.begin() + static_cast<std::ptrdiff_t>(drop));
    bytes = left;
  }
};

ThreadBlocks& own_blocks() {
  thread_local ThreadBlocks blocks;
  return blocks;
}

std::size_t granule(std::size_t bytes) {
  const std::size_t step = bytes >= kPageFrom ? kPage : kLine;
  return std::max<std::size_t>(step, (bytes + step - 1) / step * step);
}

// fork(): hold every lock across it, so the child starts with none taken.
void before_fork() {
  Registry& r = registry();
  r.mu.lock();
  for (ThreadBlocks* t : r.all) t->mu.lock();
}
void after_fork() {
  Registry& r = registry();
  for (ThreadBlocks* t : r.all) t->mu.unlock();
  r.mu.unlock();
}
[[maybe_unused]] const int g_atfork = pthread_atfork(before_fork, after_fork, after_fork);

}  // namespace

void* scratch_acquire(std::size_t bytes, std::size_t* capacity) {
  const std::size_t want = granule(bytes);
  if (kept_limit() > 0) {
    ThreadBlocks& t = own_blocks();
    const std::lock_guard<std::mutex> lock(t.mu);
    auto best = t.kept.end();
    for (auto it = t.kept.begin(); it != t.kept.end(); ++it)
      if (it->bytes >= want && it->bytes / kMaxSlack <= want &&
          (best == t.kept.end() || it->bytes < best->bytes))
        best = it;
    if (best != t.kept.end()) {
      const Block b = *best;
      t.kept.erase(best);
      t.bytes -= b.bytes;
      *capacity = b.bytes;
      return b.p;
    }
  }
  void* p = std::aligned_alloc(kLine, want);
  if (p == nullptr) throw std::bad_alloc();
  *capacity = want;
  return p;
}

void scratch_release(void* p, std::size_t capacity) noexcept {
  if (p == nullptr) return;
  const std::size_t limit = kept_limit();
  if (capacity > limit) {
    std::free(p);
    return;
  }
  try {
    ThreadBlocks& t = own_blocks();
    const std::lock_guard<std::mutex> lock(t.mu);
    t.kept.push_back({p, capacity});  // the only other throw: p is not kept yet
    t.bytes += capacity;
    t.trim(kKeepBlocks, limit);
  } catch (...) {  // no memory for this thread's list (or its entry), or no lock: not kept
    std::free(p);
  }
}

namespace {
// f(t) for every thread's kept blocks t, each under its lock (and the registry's).
template <class F>
void for_each_thread(F f) {
  Registry& r = registry();
  const std::lock_guard<std::mutex> lock(r.mu);
  for (ThreadBlocks* t : r.all) {
    const std::lock_guard<std::mutex> own(t->mu);
    f(*t);
  }
}
}  // namespace

std::size_t scratch_kept_bytes() {
  std::size_t total = 0;
  for_each_thread([&total](ThreadBlocks& t) { total += t.bytes; });
  return total;
}

std::size_t scratch_free_kept() {
  std::size_t total = 0;
  for_each_thread([&total](ThreadBlocks& t) {
    total += t.bytes;
    t.trim(0, 0);
  });
  return total;
}

void scratch_fill_kept(unsigned char byte) {
  for_each_thread([byte](ThreadBlocks& t) {
    for (const Block& b : t.kept) std::memset(b.p, byte, b.bytes);
  });
}

}  // namespace tconv
