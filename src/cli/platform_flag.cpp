// --platform's check and the platform choice of the one-shot subcommands.
#include "cli/platform_flag.h"

#include <cstdlib>
#include <stdexcept>

#include <fmt/format.h>

#include "config/checks.h"

namespace unifn::cli {

std::string platform_flag(const std::string& value) {
  if (auto bad = config::checks::platform(value)) throw std::invalid_argument(fmt::format("--platform: {}", *bad));
  return value;
}

vmm::PlatformChoice choose_tool_platform(const std::optional<std::string>& flag) {
  if (flag) return vmm::choose_platform(*flag);
  const char* env = std::getenv("UNIFN_PLATFORM");
  return vmm::choose_platform(env && *env ? env : "auto");
}

}  // namespace unifn::cli
