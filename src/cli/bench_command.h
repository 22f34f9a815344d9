// `unifnd bench IMAGE [--accel cpu|cuda|none]`: cold boot, snapshot restore and invocation cycle
// figures, one key=value a line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

namespace unifn::cli {

struct BenchOptions {
  std::string image;
  std::uint64_t requests = 2000;
  std::uint64_t boots = 200;
  std::string isolation = "per-request";
  std::string accel = "cpu";  // a backend, or none
  std::optional<std::string> platform;
};

void add_bench_options(CLI::App& cmd, BenchOptions& o);
// Returns the process exit status.
int bench_command(const BenchOptions& o);

}  // namespace unifn::cli
