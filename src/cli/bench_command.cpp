// `unifnd bench`: measures cold boot, restore, request-to-exec and the invoke cycle of one image.
#include "src/cli/bench_command.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <string>
#include <vector>

#include "accel/device.h"
#include "accel/registry.h"
#include "src/cli/flags.h"
#include "vmm/guest/function_vm.h"
#include "vmm/platform/sandbox/sandbox_machine.h"

namespace unifn::cli {

namespace {

using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// Private memory of a process in KiB (anonymous and private file pages).
long private_kib(const std::string& proc = "self") {
  std::ifstream in("/proc/" + proc + "/smaps_rollup");
  std::string key;
  long total = 0, v = 0;
  std::string unit;
  while (in >> key) {
    if (key == "Private_Clean:" || key == "Private_Dirty:") {
      in >> v >> unit;
      total += v;
    } else {
      in.ignore(1 << 20, '\n');
    }
  }
  return total;
}

vmm::Fd memfd(const char* name) {
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "memfd_create");
  return vmm::Fd(fd);
}

}  // namespace

void add_bench_options(CLI::App& cmd, BenchOptions& o) {
  cmd.add_option("IMAGE", o.image, "a function image (ELF)")->required();
  cmd.add_option("--requests", o.requests, "invocations measured")
      ->check(range_setting({1, 1u << 24}))
      ->capture_default_str();
  cmd.add_option("--boots", o.boots, "cold boots and restores measured")
      ->check(range_setting({1, 1u << 20}))
      ->capture_default_str();
  cmd.add_option("--isolation", o.isolation,
                 "reset after each call (per-request) or not (reuse), as isolation")
      ->check(isolation_setting())
      ->capture_default_str();
  cmd.add_option("--accel", o.accel, "the virtio-accel device's backend, or none")
      ->check(CLI::IsMember({"none"}) | backend_setting())
      ->capture_default_str();
  cmd.add_option("--platform", o.platform,
                 "where the VMs run (default: $UNIFN_PLATFORM, else auto)")
      ->check(platform_setting());
}

int bench_command(const BenchOptions& o) {
  const std::string& image_path = o.image;
  const std::string& isolation = o.isolation;
  const std::string& accel_backend = o.accel;
  const auto requests = o.requests, boots = o.boots;
  const std::optional<std::string>& platform_name = o.platform;
  try {
    const auto platform = choose_tool_platform(platform_name);
    if (!platform.warning.empty())
      fmt::print(stderr, "unifnd bench: warning: {}\n", platform.warning);
    auto image = vmm::FunctionImage::load(image_path);
    vmm::FunctionVmConfig cfg;
    cfg.platform = platform.platform;
    // As the daemon runs it: every function has a virtio-accel device (accel: [cpu] by default).
    if (accel_backend != "none") {
      auto backend = accel::BackendRegistry::global().get(accel_backend);
      if (!backend || !backend->available())
        throw std::runtime_error(
            fmt::format("the accelerator backend '{}' cannot run here", accel_backend));
      cfg.devices.push_back(accel::device_factory(backend));
    }
    auto quiet = [](std::string_view) {};

    std::vector<double> cold;
    for (std::uint64_t i = 0; i < boots; ++i) {
      auto t0 = Clock::now();
      auto vm = vmm::FunctionVm::boot(image, cfg, quiet);
      cold.push_back(us_since(t0));
    }
    auto warm = vmm::FunctionVm::boot(image, cfg, quiet);
    auto t_snap = Clock::now();
    auto snap = std::shared_ptr<const vmm::Snapshot>(warm->snapshot(memfd("unifn-bench")));
    double snapshot_us = us_since(t_snap);
    warm.reset();

    std::vector<double> restore;
    for (std::uint64_t i = 0; i < boots; ++i) {
      auto t0 = Clock::now();
      auto vm = vmm::FunctionVm::restore(snap, image, cfg, quiet);
      restore.push_back(us_since(t0));
    }

    const bool per_request = isolation == "per-request";
    auto vm = vmm::FunctionVm::restore(snap, image, cfg, quiet);
    const std::string body = "hello, unifn";
    const auto bytes = std::span(reinterpret_cast<const std::uint8_t*>(body.data()),
                                 body.size());  // Safe: chars as bytes.
    std::vector<double> cycle, to_exec, reset_pages;
    for (std::uint64_t i = 0; i < requests; ++i) {
      auto t0 = Clock::now();
      auto out = vm->invoke(bytes, "text/plain", t0 + std::chrono::seconds(5));
      if (!out.ok())
        throw std::runtime_error(fmt::format("request {} failed: {}", i, out.stop.message));
      if (per_request) {
        vm->reset();
        reset_pages.push_back(static_cast<double>(vm->last_reset_pages()));
      }
      cycle.push_back(us_since(t0));
      if (out.handler_tsc > out.deliver_tsc)
        to_exec.push_back(vm->tsc_to_us(out.handler_tsc - out.deliver_tsc));
    }
    vm.reset();

    constexpr int kIdle = 16;
    long before = private_kib();
    std::vector<std::unique_ptr<vmm::FunctionVm>> idle;
    for (int i = 0; i < kIdle; ++i)
      idle.push_back(vmm::FunctionVm::restore(snap, image, cfg, quiet));
    long outside = 0;  // a sandbox instance's memory lives outside this process too
    for (const auto& vm : idle)
      if (auto* sandbox = dynamic_cast<vmm::SandboxMachine*>(&vm->machine())) {
        for (auto [from, to] : vm->machine().memory().populated())
          outside += static_cast<long>((to - from) >> 10);
        outside += private_kib(std::to_string(sandbox->pid()));
      }
    long per_instance = (private_kib() - before + outside) / kIdle;

    fmt::print("image={}\nplatform={}\nisolation={}\naccel={}\nrequests={}\n", image_path,
               platform.platform->name(), isolation, accel_backend, requests);
    fmt::print("cold_boot_us_p50={:.0f}\ncold_boot_us_p99={:.0f}\n", percentile(cold, 0.5),
               percentile(cold, 0.99));
    fmt::print("snapshot_us={:.0f}\n", snapshot_us);
    fmt::print("restore_us_p50={:.0f}\nrestore_us_p99={:.0f}\n", percentile(restore, 0.5),
               percentile(restore, 0.99));
    fmt::print("request_to_exec_us_p50={:.1f}\nrequest_to_exec_us_p99={:.1f}\n",
               percentile(to_exec, 0.5), percentile(to_exec, 0.99));
    fmt::print("invoke_cycle_us_p50={:.1f}\ninvoke_cycle_us_p99={:.1f}\n", percentile(cycle, 0.5),
               percentile(cycle, 0.99));
    if (per_request) fmt::print("reset_pages_p50={:.0f}\n", percentile(reset_pages, 0.5));
    fmt::print("rss_kib_per_idle_instance={}\n", per_instance);
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "unifnd bench: {}\n", e.what());
    return 1;
  }
}

}  // namespace unifn::cli
