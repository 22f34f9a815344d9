// --platform on unifnd and its subcommands: checked as the daemon file's `platform` key is.
#pragma once

#include <optional>
#include <string>

#include "platform/platform.h"

namespace unifn::cli {

// The value of --platform; throws std::invalid_argument naming the flag when it is not a platform.
std::string platform_flag(const std::string& value);

// run, bench and bench-accel: --platform when given, else $UNIFN_PLATFORM (as for any VM that names
// no platform), else auto. Throws as vmm::choose_platform does.
vmm::PlatformChoice choose_tool_platform(const std::optional<std::string>& flag);

}  // namespace unifn::cli
