// `unifnd bench-accel [--backend cpu|cuda]`: the NOOP round trip and SGEMM through a real guest against the host.
#pragma once

#include <span>

namespace unifn::cli {

int bench_accel_command(std::span<char*> args);

}  // namespace unifn::cli
