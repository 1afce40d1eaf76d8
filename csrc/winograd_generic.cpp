// The Winograd tasks (winograd_tasks.inc, winograd_gather_tasks.inc) compiled with no ISA flags
// and -ffp-contract=off (CMake set_source_files_properties): the transforms use this ISA's
// vectors and round as on every other ISA.
#include <algorithm>
#include <cstdint>

#include "tconv/nonfinite.hpp"
#include "tconv/winograd_tasks.hpp"

namespace {
#include "winograd_tasks.inc"
#include "winograd_gather_tasks.inc"
}  // namespace

const tconv::wino::TaskTable* tconv::wino::generic_tasks() {
  static const TaskTable table = make_table();
  return &table;
}
