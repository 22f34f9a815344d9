// `unifnd bench-accel [--backend cpu|cuda]`: the NOOP round trip and SGEMM through a real guest
// against the host.
#pragma once

#include <optional>
#include <string>

#include <CLI/CLI.hpp>

namespace unifn::cli {

struct BenchAccelOptions {
  std::string backend = "cpu";
  bool quick = false;
  std::string probe;  // empty: the accel_probe guest beside unifnd
  std::optional<std::string> platform;
};

void add_bench_accel_options(CLI::App& cmd, BenchAccelOptions& o);
// Returns the process exit status.
int bench_accel_command(const BenchAccelOptions& o);

}  // namespace unifn::cli
