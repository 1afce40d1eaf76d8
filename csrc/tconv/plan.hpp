// The planner's constants: the thresholds that choose how an operator runs, each defined once
// and shared by the operators that apply it (subconv/plan.cpp, columns.cpp, weight_grad.cpp).
#pragma once

#include <cstdint>

namespace tconv {

// Below this many flops a call runs on one thread (starting the pool costs more than it saves).
constexpr double kParallelFlops = 2e5;
// Tasks aimed at per thread, so that dynamic scheduling evens out their unequal costs.
constexpr int64_t kTasksPerThread = 4;
// A block of A kept in L2 while B panels stream past it (bytes).
constexpr int64_t kL2ABytes = int64_t(256) << 10;
// The sub-convolutions' direct (row-tile) path needs rows filling at least this fraction of
// their tiles of nr points; shorter rows take the packed path.
constexpr double kDirectMinFill = 0.6;

}  // namespace tconv
