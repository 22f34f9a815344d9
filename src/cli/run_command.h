// `unifnd run IMAGE`: boot one image in a fresh VM, feed it one request or relay its serial port.
#pragma once

#include <span>
#include <string>

namespace unifn::cli {

// argv after "run"; returns the process exit status.
int run_command(std::span<char*> args);

}  // namespace unifn::cli
