// `unifnd run`: one image, one VM, one request (functions) or one boot (multiboot/PVH kernels).
#include "src/cli/run_command.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fmt/format.h>
#include <iostream>
#include <iterator>
#include <fstream>
#include <optional>

#include "src/cli/flags.h"
#include "src/config/checks.h"
#include "vmm/guest/function_vm.h"
#include "vmm/kernel_boot.h"
#include "vmm/snapshot/snapshot_store.h"

namespace unifn::cli {

namespace {

std::string read_input(const std::optional<std::string>& input) {
  if (!input) return {};
  if (*input == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  std::ifstream f(*input, std::ios::binary);
  if (!f) throw std::runtime_error(fmt::format("cannot read the input file {}", *input));
  return std::string(std::istreambuf_iterator<char>(f), {});
}

int run_function(const RunOptions& o, std::shared_ptr<const vmm::FunctionImage> image,
                 vmm::Platform& platform) {
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
    if (!got.warning.empty())
      fmt::print(stderr, "unifnd run: {}: warning: {}\n", o.image, got.warning);
    fmt::print(stderr, "unifnd run: {}: {} ({})\n", o.image,
               got.from_disk ? "restored from snapshot" : "booted cold, snapshot saved",
               store.state_path(vmm::SnapshotStore::key(*image, cfg)).string());
    vm = vmm::FunctionVm::restore(got.snapshot, image, cfg, console);
  } else {
    vm = vmm::FunctionVm::boot(image, cfg, console);
  }
  auto outcome = vm->invoke(std::span(reinterpret_cast<const std::uint8_t*>(body.data()),
                                      body.size()),  // Safe: chars as bytes.
                            "", t0 + std::chrono::milliseconds(o.timeout_ms));
  if (outcome.too_large) {
    fmt::print(stderr, "unifnd run: {}: {}\n", o.image, outcome.body);
    return 1;
  }
  if (!outcome.ok()) {
    fmt::print(stderr, "unifnd run: {}: {}: {}\n", o.image, to_string(outcome.stop.kind),
               outcome.stop.message);
    return outcome.stop.kind == vmm::StopKind::Timeout ? 124 : 1;
  }
  std::fwrite(outcome.body.data(), 1, outcome.body.size(), stdout);
  std::fflush(stdout);
  if (outcome.status >= 300)
    fmt::print(stderr, "unifnd run: {}: the function answered HTTP status {}\n", o.image,
               outcome.status);
  return 0;
}

}  // namespace

void add_run_options(CLI::App& cmd, RunOptions& o) {
  namespace checks = config::checks;
  cmd.add_option("IMAGE", o.image, "a function image (ELF), or a multiboot/PVH kernel")->required();
  cmd.add_option("--input", o.input, "the request body: a file, or - for stdin (none: empty)");
  cmd.add_option("--memory", o.memory_mb, "guest memory in MiB, as memory_mb")
      ->check(range_setting(checks::kMemoryMb))
      ->capture_default_str();
  cmd.add_option("--timeout-ms", o.timeout_ms,
                 "the boot's and the call's time limit, as timeout_ms")
      ->check(range_setting(checks::kTimeoutMs))
      ->capture_default_str();
  cmd.add_option("--cmdline", o.cmdline, "the guest's command line, as cmdline")
      ->check(cmdline_setting());
  cmd.add_option("--state-dir", o.state_dir,
                 "keep the snapshot there: restore it when it is there, save it when not");
  cmd.add_option("--platform", o.platform,
                 "where the VM runs (default: $UNIFN_PLATFORM, else auto)")
      ->check(platform_setting());
}

int run_command(const RunOptions& o) {
  try {
    const auto platform = choose_tool_platform(o.platform);
    if (!platform.warning.empty())
      fmt::print(stderr, "unifnd run: warning: {}\n", platform.warning);
    auto bytes = vmm::read_image_file(o.image);
    if (!vmm::is_kernel_image(bytes))
      return run_function(o, vmm::FunctionImage::from_bytes(o.image, std::move(bytes)),
                          *platform.platform);
    vmm::KernelBootConfig kc;
    kc.platform = platform.platform;
    kc.memory_bytes = o.memory_mb << 20;
    kc.cmdline = o.cmdline;
    kc.timeout = std::chrono::milliseconds(o.timeout_ms);
    kc.serial = [](std::string_view bytes) {
      std::fwrite(bytes.data(), 1, bytes.size(), stdout);
      std::fflush(stdout);
    };
    auto result = vmm::boot_kernel(o.image, bytes, kc);
    if (result.stop.kind == vmm::StopKind::Exited || result.stop.kind == vmm::StopKind::Halted)
      return result.exit_status;
    fmt::print(stderr, "unifnd run: {}: {}: {}\n", o.image, to_string(result.stop.kind),
               result.stop.message);
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
