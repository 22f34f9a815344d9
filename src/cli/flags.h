// Flags of unifnd and its subcommands that name a setting the config files also have: checked by
// the same rule (config/checks.h), so `--listen 0.0.0.0:70000` fails as `listen:` in a file does.
#pragma once

#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "src/config/checks.h"
#include "vmm/platform/platform.h"

namespace unifn::cli {

// --platform: auto, kvm or sandbox, as the daemon file's `platform`.
CLI::Validator platform_setting();
// --listen: HOST:PORT with an IP address, as the daemon file's `listen`.
CLI::Validator listen_setting();
// A whole number in r, as a file's number of that name (memory_mb, timeout_ms, ...).
CLI::Validator range_setting(config::checks::Range r);
// --isolation: per-request or reuse.
CLI::Validator isolation_setting();
// An accelerator backend's name, as an item of a drop-in's `accel`.
CLI::Validator backend_setting();
// --cmdline: as a drop-in's `cmdline`.
CLI::Validator cmdline_setting();

// run, bench and bench-accel: --platform when given, else $UNIFN_PLATFORM (as for any VM that names
// no platform), else auto. Throws as vmm::choose_platform does.
vmm::PlatformChoice choose_tool_platform(const std::optional<std::string>& flag);

}  // namespace unifn::cli
