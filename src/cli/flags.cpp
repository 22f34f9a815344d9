// The flags' checks, each one of config/checks.h, and the platform choice of the one-shot
// subcommands.
#include "src/cli/flags.h"

#include <charconv>
#include <cstdlib>

namespace unifn::cli {

namespace {

// A validator from a config check: CLI11 prints "--flag: <the check's sentence>".
CLI::Validator from_check(std::string description,
                          std::optional<std::string> (*check)(const std::string&)) {
  return CLI::Validator(
      [check](std::string& value) { return check(value).value_or(std::string()); },
      std::move(description));
}

}  // namespace

CLI::Validator platform_setting() {
  return from_check("auto|kvm|sandbox", config::checks::platform);
}
CLI::Validator listen_setting() { return from_check("HOST:PORT", config::checks::listen); }
CLI::Validator isolation_setting() {
  return from_check("per-request|reuse", config::checks::isolation);
}
CLI::Validator backend_setting() { return from_check("cpu|cuda", config::checks::backend); }
CLI::Validator cmdline_setting() { return from_check("TEXT", config::checks::cmdline); }

CLI::Validator range_setting(config::checks::Range r) {
  return CLI::Validator(
      [r](std::string& value) -> std::string {
        std::uint64_t n = 0;
        const char* end = value.data() + value.size();
        auto [at, ec] = std::from_chars(value.data(), end, n);
        if (value.empty() || ec != std::errc() || at != end)
          return "'" + value + "' is not a whole number";
        return config::checks::range(n, r).value_or(std::string());
      },
      std::to_string(r.lo) + ".." + std::to_string(r.hi));
}

vmm::PlatformChoice choose_tool_platform(const std::optional<std::string>& flag) {
  if (flag) return vmm::choose_platform(*flag);
  const char* env = std::getenv("UNIFN_PLATFORM");
  return vmm::choose_platform(env && *env ? env : "auto");
}

}  // namespace unifn::cli
