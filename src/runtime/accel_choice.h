// Which accelerator backend a function gets: its own list, in its order, limited to the daemon's
// accel.backends.
#pragma once

#include <string>
#include <vector>

#include "accel/registry.h"

namespace unifn::runtime {

// The first backend of function_allowed that the daemon allows (daemon_allowed) and that can run
// here. A preferred backend skipped for either reason is named in fallback ("cuda is unavailable
// (...); using cpu"); with none left, backend is null and error is the sentence a call's 503
// carries.
accel::Selection choose_accel(const std::vector<std::string>& function_allowed,
                              const std::vector<std::string>& daemon_allowed,
                              const accel::BackendRegistry& backends);

}  // namespace unifn::runtime
