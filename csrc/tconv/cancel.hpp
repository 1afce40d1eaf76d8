// Cooperative cancellation of a kernel call (Ctrl-C), with no Python in it.
//
// A caller that wants a call to be interruptible creates a Cancellation and installs it on
// its own thread for the duration of the call (CancelScope).  The kernels read it once on the
// calling thread, before their parallel region (current_cancellation()), and between tasks
// call stop(): once it returns true they take no further task.  They never reorder or resize
// tasks for it, so a call that is not cancelled computes bit for bit what it would compute
// without one.  A cancelled call returns early and its output holds unspecified values.
//
// Only the installing thread -- the caller, hence the master of every parallel region the
// call opens -- runs the poll function (at most once per interval, from inside stop()); the
// other threads of the team only read the flag it sets.
#pragma once

#include <atomic>
#include <chrono>
#include <thread>

namespace tconv {

class Cancellation {
 public:
  // Returns true to cancel the call.  Runs on the installing thread only; must not throw.
  using Poll = bool (*)(void* context);

  Cancellation(Poll poll, void* context, std::chrono::steady_clock::duration interval)
      : poll_(poll),
        context_(context),
        interval_(interval),
        owner_(std::this_thread::get_id()),
        next_poll_(std::chrono::steady_clock::now() + interval) {}
  Cancellation(const Cancellation&) = delete;
  Cancellation& operator=(const Cancellation&) = delete;

  bool cancelled() const noexcept { return flag_.load(std::memory_order_relaxed); }

  // Any thread: true once the call is cancelled; on the owner thread, polls when due.
  bool check() noexcept {
    if (poll_ != nullptr && std::this_thread::get_id() == owner_ && !cancelled()) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= next_poll_) {
        if (poll_(context_)) flag_.store(true, std::memory_order_relaxed);
        next_poll_ = std::chrono::steady_clock::now() + interval_;
      }
    }
    return cancelled();
  }

 private:
  Poll poll_;
  void* context_;
  std::chrono::steady_clock::duration interval_;
  std::thread::id owner_;
  std::chrono::steady_clock::time_point next_poll_;  // owner thread only
  std::atomic<bool> flag_{false};
};

// The calling thread's Cancellation (nullptr: the call cannot be cancelled).
Cancellation* current_cancellation() noexcept;

// Installs `c` (may be nullptr) as the calling thread's Cancellation until destroyed.
class CancelScope {
 public:
  explicit CancelScope(Cancellation* c) noexcept;
  ~CancelScope();
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

 private:
  Cancellation* previous_;
};

// Between tasks: true when the remaining tasks must be skipped (polls on the owner thread).
inline bool stop(Cancellation* c) noexcept { return c != nullptr && c->check(); }

}  // namespace tconv
