// `unifnd run IMAGE`: boot one image in a fresh VM, feed it one request or relay its serial port.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

namespace unifn::cli {

struct RunOptions {
  std::string image;
  std::optional<std::string> input;  // a file, or "-" for stdin
  std::uint64_t memory_mb = 64;
  std::uint64_t timeout_ms = 10000;
  std::string cmdline;
  std::optional<std::string> state_dir;  // use and create snapshots there
  std::optional<std::string> platform;
};

// The flags of `run` on cmd, each checked as the drop-in key of the same name.
void add_run_options(CLI::App& cmd, RunOptions& o);
// Returns the process exit status.
int run_command(const RunOptions& o);

}  // namespace unifn::cli
