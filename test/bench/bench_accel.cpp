// bench_accel [--backend cpu|cuda] [--quick] [--probe IMAGE]: accelerator throughput through a real guest vs the host.
#include <cstring>
#include <exception>
#include <iostream>
#include <string>

#include "bench/accel_bench.h"

int main(int argc, char** argv) {
  unifn::accel::bench::Options opts;
  opts.probe_image = UNIFN_ACCEL_PROBE;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--backend" && i + 1 < argc) {
      opts.backend = argv[++i];
    } else if (arg == "--probe" && i + 1 < argc) {
      opts.probe_image = argv[++i];
    } else if (arg == "--quick") {
      opts.quick = true;
    } else {
      std::cerr << "usage: bench_accel [--backend cpu|cuda] [--quick] [--probe accel_probe.elf]\n";
      return 64;
    }
  }
  try {
    return unifn::accel::bench::run(opts, std::cout, std::cerr);
  } catch (const std::exception& e) {
    std::cerr << "bench_accel: " << e.what() << "\n";
    return 1;
  }
}
