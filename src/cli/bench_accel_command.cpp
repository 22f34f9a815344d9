// `unifnd bench-accel`: finds the probe guest beside unifnd (build tree or installed) and runs accel::bench.
#include "cli/bench_accel_command.h"

#include <exception>
#include <filesystem>
#include <iostream>
#include <string>

#include <fmt/format.h>

#include "accel/bench/accel_bench.h"
#include "cli/platform_flag.h"

namespace unifn::cli {

namespace fs = std::filesystem;

namespace {

constexpr const char* kUsage =
    "usage: unifnd bench-accel [--backend cpu|cuda] [--quick] [--probe IMAGE] [--platform auto|kvm|sandbox]\n";

// functions/bench/accel_probe.elf next to a build tree's unifnd, or in <prefix>/lib/unifn when installed.
std::string find_probe() {
  std::error_code ec;
  auto dir = fs::canonical("/proc/self/exe", ec).parent_path();
  for (auto candidate : {dir / "functions/bench/accel_probe.elf", dir / "../lib/unifn/functions/bench/accel_probe.elf"})
    if (fs::is_regular_file(candidate, ec)) return candidate.lexically_normal().string();
  return {};
}

}  // namespace

int bench_accel_command(std::span<char*> args) {
  accel::bench::Options opts;
  std::optional<std::string> platform_name;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string a = args[i];
    if (a == "--backend" && i + 1 < args.size()) opts.backend = args[++i];
    else if (a == "--platform" && i + 1 < args.size()) {
      try {
        platform_name = platform_flag(args[++i]);
      } catch (const std::invalid_argument& e) {
        fmt::print(stderr, "unifnd bench-accel: {}\n{}", e.what(), kUsage);
        return 2;
      }
    }
    else if (a == "--probe" && i + 1 < args.size()) opts.probe_image = args[++i];
    else if (a == "--quick") opts.quick = true;
    else {
      fmt::print(stderr, "unifnd bench-accel: unknown option {}\n{}", a, kUsage);
      return 2;
    }
  }
  if (opts.probe_image.empty()) opts.probe_image = find_probe();
  if (opts.probe_image.empty()) {
    fmt::print(stderr, "unifnd bench-accel: the probe guest accel_probe.elf is not beside unifnd; name it with --probe\n");
    return 2;
  }
  try {
    const auto platform = choose_tool_platform(platform_name);
    if (!platform.warning.empty()) fmt::print(stderr, "unifnd bench-accel: warning: {}\n", platform.warning);
    opts.platform = platform.platform;
    std::cout << "platform=" << platform.platform->name() << "\n";
    return accel::bench::run(opts, std::cout, std::cerr);
  } catch (const std::exception& e) {
    fmt::print(stderr, "unifnd bench-accel: {}\n", e.what());
    return 1;
  }
}

}  // namespace unifn::cli
