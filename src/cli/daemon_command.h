// `unifnd [--config FILE]`: the HTTP daemon; `unifnd check-config`: validate without serving.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace unifn::cli {

// What the command line sets over the config file; each flag is checked as its key in the file.
struct DaemonOptions {
  std::optional<std::filesystem::path> config;
  std::optional<std::string> listen, state_dir, platform;
  std::vector<std::string> functions_dirs;
};

// The daemon's flags, on unifnd itself and on check-config.
void add_daemon_options(CLI::App& cmd, DaemonOptions& o);
// Both return the process exit status.
int daemon_command(const DaemonOptions& o);
int check_config_command(const DaemonOptions& o);

}  // namespace unifn::cli
