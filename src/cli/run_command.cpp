// `unifnd run`: one image, one VM, one request (functions) or one boot (multiboot/PVH kernels).
#include "cli/run_command.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fmt/format.h>
#include <iostream>
#include <iterator>
#include <fstream>
#include <optional>

#include "cli/platform_flag.h"
#include "guest/function_vm.h"
#include "kernel_boot.h"
#include "snapshot/snapshot_store.h"

namespace unifn::cli {

namespace {

struct RunOptions {
  std::string image;
  std::optional<std::string> input;  // a file, or "-" for stdin
  std::size_t memory_mb = 64;
  long timeout_ms = 10000;
  std::string cmdline;
  std::optional<std::string> state_dir;  // use and create snapshots there
  std::optional<std::string> platform;
};

const char* kUsage =
    "usage: unifnd run IMAGE [--input FILE|-] [--memory MB] [--timeout-ms N] [--cmdline STR] [--state-dir DIR]\n"
    "                        [--platform auto|kvm|sandbox]\n";

RunOptions parse(std::span<char*> args) {
  RunOptions o;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw std::invalid_argument(fmt::format("{} needs a value", a));
      return args[++i];
    };
    auto number = [&](const std::string& v) -> long {
      std::size_t end = 0;
      long n = -1;
      try {
        n = std::stol(v, &end);
      } catch (const std::exception&) {
      }
      if (end != v.size() || n <= 0) throw std::invalid_argument(fmt::format("{} needs a positive number, not '{}'", a, v));
      return n;
    };
    if (a == "--input") o.input = value();
    else if (a == "--memory") o.memory_mb = static_cast<std::size_t>(number(value()));
    else if (a == "--timeout-ms") o.timeout_ms = number(value());
    else if (a == "--cmdline") o.cmdline = value();
    else if (a == "--state-dir") o.state_dir = value();
    else if (a == "--platform") o.platform = platform_flag(value());
    else if (!a.empty() && a[0] == '-' && a != "-") throw std::invalid_argument(fmt::format("unknown option {}", a));
    else if (o.image.empty()) o.image = a;
    else throw std::invalid_argument(fmt::format("unexpected argument {}", a));
  }
  if (o.image.empty()) throw std::invalid_argument("no IMAGE given");
  return o;
}

std::string read_input(const std::optional<std::string>& input) {
  if (!input) return {};
  if (*input == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  std::ifstream f(*input, std::ios::binary);
  if (!f) throw std::runtime_error(fmt::format("cannot read the input file {}", *input));
  return std::string(std::istreambuf_iterator<char>(f), {});
}

int run_function(const RunOptions& o, std::shared_ptr<const vmm::FunctionImage> image, vmm::Platform& platform) {
  vmm::FunctionVmConfig cfg;
  cfg.platform = &platform;
  cfg.memory_bytes = o.memory_mb << 20;
  cfg.cmdline = o.cmdline;
  cfg.init_timeout = std::chrono::milliseconds(o.timeout_ms);
  std::string body = read_input(o.input);
  cfg.max_body_bytes = std::max<std::size_t>(cfg.max_body_bytes, body.size());
  auto console = [](std::string_view line) { fmt::print(stderr, "{}\n", line); };
  auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<vmm::FunctionVm> vm;
  if (o.state_dir) {
    vmm::SnapshotStore store(*o.state_dir);
    auto got = store.get_or_build(image, cfg, console);
    if (!got.warning.empty()) fmt::print(stderr, "unifnd run: {}: warning: {}\n", o.image, got.warning);
    fmt::print(stderr, "unifnd run: {}: {} ({})\n", o.image, got.from_disk ? "restored from snapshot" : "booted cold, snapshot saved",
               store.state_path(vmm::SnapshotStore::key(*image, cfg)).string());
    vm = vmm::FunctionVm::restore(got.snapshot, image, cfg, console);
  } else {
    vm = vmm::FunctionVm::boot(image, cfg, console);
  }
  auto outcome = vm->invoke(std::span(reinterpret_cast<const std::uint8_t*>(body.data()), body.size()),  // Safe: chars as bytes.
                            "", t0 + std::chrono::milliseconds(o.timeout_ms));
  if (outcome.too_large) {
    fmt::print(stderr, "unifnd run: {}: {}\n", o.image, outcome.body);
    return 1;
  }
  if (!outcome.ok()) {
    fmt::print(stderr, "unifnd run: {}: {}: {}\n", o.image, to_string(outcome.stop.kind), outcome.stop.message);
    return outcome.stop.kind == vmm::StopKind::Timeout ? 124 : 1;
  }
  std::fwrite(outcome.body.data(), 1, outcome.body.size(), stdout);
  std::fflush(stdout);
  if (outcome.status >= 300) fmt::print(stderr, "unifnd run: {}: the function answered HTTP status {}\n", o.image, outcome.status);
  return 0;
}

}  // namespace

int run_command(std::span<char*> args) {
  RunOptions o;
  try {
    o = parse(args);
  } catch (const std::invalid_argument& e) {
    fmt::print(stderr, "unifnd run: {}\n{}", e.what(), kUsage);
    return 2;
  }
  try {
    const auto platform = choose_tool_platform(o.platform);
    if (!platform.warning.empty()) fmt::print(stderr, "unifnd run: warning: {}\n", platform.warning);
    auto bytes = vmm::read_image_file(o.image);
    if (!vmm::is_kernel_image(bytes))
      return run_function(o, vmm::FunctionImage::from_bytes(o.image, std::move(bytes)), *platform.platform);
    vmm::KernelBootConfig kc;
    kc.platform = platform.platform;
    kc.memory_bytes = o.memory_mb << 20;
    kc.cmdline = o.cmdline;
    kc.timeout = std::chrono::milliseconds(o.timeout_ms);
    kc.serial = [](std::string_view bytes) { std::fwrite(bytes.data(), 1, bytes.size(), stdout); std::fflush(stdout); };
    auto result = vmm::boot_kernel(o.image, bytes, kc);
    if (result.stop.kind == vmm::StopKind::Exited || result.stop.kind == vmm::StopKind::Halted) return result.exit_status;
    fmt::print(stderr, "unifnd run: {}: {}: {}\n", o.image, to_string(result.stop.kind), result.stop.message);
    return result.stop.kind == vmm::StopKind::Timeout ? 124 : 1;
  } catch (const vmm::BootError& e) {
    fmt::print(stderr, "unifnd run: {}\n", e.what());
    return e.stop.kind == vmm::StopKind::Timeout ? 124 : 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "unifnd run: {}\n", e.what());
    return 1;
  }
}

}  // namespace unifn::cli
