// Per-thread scratch for packed panels (see the workspace bound in kernels.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace tconv {

// 64-byte aligned, uninitialised, grow-only buffer.
template <typename T>
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(data_); }
  T* get(int64_t count) {
    if (count > size_) {
      std::free(data_);
      const std::size_t bytes = ((static_cast<std::size_t>(count) * sizeof(T)) + 63) / 64 * 64;
      data_ = static_cast<T*>(std::aligned_alloc(64, bytes));
      if (data_ == nullptr) throw std::bad_alloc();
      size_ = count;
    }
    return data_;
  }

 private:
  T* data_ = nullptr;
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
