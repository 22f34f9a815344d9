// Accelerator choice per function: the daemon's list filters, the function's list orders, the
// registry decides.
#include "src/runtime/accel_choice.h"

#include <algorithm>

#include <fmt/format.h>

namespace unifn::runtime {

accel::Selection choose_accel(const std::vector<std::string>& function_allowed,
                              const std::vector<std::string>& daemon_allowed,
                              const accel::BackendRegistry& backends) {
  std::vector<std::string> allowed, disabled;
  for (const auto& name : function_allowed) {
    if (std::find(daemon_allowed.begin(), daemon_allowed.end(), name) != daemon_allowed.end())
      allowed.push_back(name);
    else
      disabled.push_back(name);
  }
  if (allowed.empty()) {
    accel::Selection s;
    s.preferred = function_allowed.empty() ? std::string() : function_allowed.front();
    s.error = function_allowed.empty()
                  ? "the function allows no accelerator backend"
                  : fmt::format(
                        "the function allows only {} and the daemon's accel.backends ({}) allows "
                        "none of them",
                        fmt::join(function_allowed, ", "), fmt::join(daemon_allowed, ", "));
    return s;
  }
  auto s = backends.select(allowed);
  s.preferred = function_allowed.front();
  // A backend the function preferred but the daemon does not allow is a fallback too.
  if (s.backend && !disabled.empty() && s.preferred != allowed.front()) {
    std::string why = fmt::format("{} {} disabled by accel.backends", fmt::join(disabled, ", "),
                                  disabled.size() == 1 ? "is" : "are");
    s.fallback = s.fallback.empty() ? fmt::format("{}; using {}", why, s.backend->name())
                                    : why + "; " + s.fallback;
  }
  if (!s.backend && !disabled.empty())
    s.error += fmt::format("; {} not allowed by accel.backends", fmt::join(disabled, ", "));
  return s;
}

}  // namespace unifn::runtime
