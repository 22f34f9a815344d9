// The CPU backend as a module that unifnd loads the first time it needs it, so that OpenCV and
// OpenBLAS (with the twenty libraries they pull in) cost nothing to a process that never
// accelerates.
#include "accel/cpu/cpu_backend.h"

extern "C" __attribute__((visibility("default"))) unifn::accel::Backend* unifn_accel_cpu_create() {
  return unifn::accel::make_cpu_backend().release();
}
