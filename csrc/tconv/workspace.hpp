// Per-thread scratch for packed panels (see the workspace bound in kernels.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace tconv {

// Memory for scratch buffers, kept between calls (workspace.cpp): scratch_acquire returns a
// 64-byte aligned block of at least `bytes` bytes (its size in *capacity), from the calling
// thread's kept blocks when one fits, else newly allocated; scratch_release(p, capacity) hands
// a block back (nullptr: nothing), to be kept for the releasing thread's next acquire or
// freed.  Throws std::bad_alloc when memory runs out.
void* scratch_acquire(std::size_t bytes, std::size_t* capacity);
void scratch_release(void* p, std::size_t capacity) noexcept;
// Bytes kept by every thread, and freeing them all (returns the bytes freed).
std::size_t scratch_kept_bytes();
std::size_t scratch_free_kept();
// Sets every byte of every kept block to `byte` (tests: no call may read scratch it did not
// write).
void scratch_fill_kept(unsigned char byte);

// 64-byte aligned, uninitialised, grow-only buffer; its memory returns to scratch_release.
template <typename T>
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { scratch_release(data_, bytes_); }
  T* get(int64_t count) {
    if (count > size_) {
      scratch_release(data_, bytes_);
      data_ = nullptr;
      bytes_ = 0;
      size_ = 0;
      data_ = static_cast<T*>(scratch_acquire(static_cast<std::size_t>(count) * sizeof(T), &bytes_));
      size_ = static_cast<int64_t>(bytes_ / sizeof(T));
    }
    return data_;
  }

 private:
  T* data_ = nullptr;
  std::size_t bytes_ = 0;
  int64_t size_ = 0;
};

// Reduction (K) block: one packed B panel of kKBlockBytes * nr bytes stays in L1.
constexpr int64_t kKBlockBytes = 1024;
template <typename T>
constexpr int64_t k_block() {
  return kKBlockBytes / static_cast<int64_t>(sizeof(T));
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

}  // namespace tconv
