// The accelerator benchmark: NOOP round trip and SGEMM through a real guest against the same
// backend called directly.
#pragma once

#include <ostream>
#include <string>

#include "vmm/platform/platform.h"

namespace unifn::accel::bench {

struct Options {
  std::string backend = "cpu";  // a name BackendRegistry::global() knows
  std::string probe_image;      // the accel_probe guest (functions/bench/accel_probe.c)
  int noop_iterations = 2000;
  bool quick = false;  // fewer repetitions and no 2048 (for smoke tests)
  vmm::Platform* platform =
      nullptr;  // where the probe guest runs; nullptr: vmm::default_platform()
};

// Prints one key=value per line to out: noop_roundtrip_us_p50, mmio_exit_us_p50,
// sgemm_<n>_guest_over_host for n in 256, 1024, 2048, and the GFLOP/s behind them.
// Returns 0, or 2 with a sentence on err when the backend cannot run here.
int run(const Options& opts, std::ostream& out, std::ostream& err);

}  // namespace unifn::accel::bench
