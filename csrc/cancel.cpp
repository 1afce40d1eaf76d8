// The calling thread's Cancellation (see tconv/cancel.hpp).
#include "tconv/cancel.hpp"

namespace tconv {

namespace {
thread_local Cancellation* t_current = nullptr;
}

Cancellation* current_cancellation() noexcept { return t_current; }

CancelScope::CancelScope(Cancellation* c) noexcept : previous_(t_current) { t_current = c; }

CancelScope::~CancelScope() { t_current = previous_; }

}  // namespace tconv
