// bench-accel: the NOOP round trip against a bare VM exit, and SGEMM through the guest against the
// backend on the host.
#include "accel/bench/accel_bench.h"

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <vector>

#include <unifn/accel_probe.h>
#include "accel/device.h"
#include "vmm/guest/function_vm.h"
#include "accel/registry.h"

namespace unifn::accel::bench {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

vmm::Outcome call(vmm::FunctionVm& vm, probe_cmd c) {
  std::uint8_t body[sizeof c];
  std::memcpy(body, &c, sizeof c);
  return vm.invoke(body, "application/octet-stream", Clock::now() + std::chrono::seconds(300));
}

void require(const vmm::Outcome& o, const char* what) {
  if (!o.ok() || o.status != 200)
    throw std::runtime_error(fmt::format("the probe guest failed {}: {} (status {}, {})", what,
                                         o.stop.message, o.status, o.body));
}

// Median of the u32 nanosecond timings a probe answered, in microseconds.
double p50_us(const vmm::Outcome& o) {
  std::vector<std::uint32_t> ns(o.body.size() / 4);
  std::memcpy(ns.data(), o.body.data(), ns.size() * 4);
  if (ns.empty()) return 0;
  std::nth_element(ns.begin(), ns.begin() + static_cast<std::ptrdiff_t>(ns.size() / 2), ns.end());
  return ns[ns.size() / 2] / 1000.0;
}

// The same numbers the probe's fill makes, so host and guest multiply the same matrices.
void fill(std::vector<float>& v, std::uint32_t& lcg) {
  for (auto& x : v) {
    lcg = lcg * 1664525u + 1013904223u;
    x = static_cast<float>(lcg >> 8) / static_cast<float>(1u << 24) - 0.5f;
  }
}

}  // namespace

int run(const Options& opts, std::ostream& out, std::ostream& err) {
  auto backend = BackendRegistry::global().get(opts.backend);
  if (!backend) {
    err << fmt::format("bench-accel: this build has no backend named '{}'\n", opts.backend);
    return 2;
  }
  if (!backend->available()) {
    err << fmt::format("bench-accel: the {} backend is unavailable here: {}\n", opts.backend,
                       backend->unavailable_reason());
    return 2;
  }
  vmm::FunctionVmConfig cfg;
  cfg.memory_bytes = opts.quick ? (128ull << 20) : (512ull << 20);
  cfg.max_body_bytes = 1ull << 20;
  cfg.devices = {device_factory(backend)};
  cfg.platform = opts.platform;
  auto image = vmm::FunctionImage::load(opts.probe_image);
  auto vm = vmm::FunctionVm::boot(image, cfg, [](std::string_view) {});

  out << "backend=" << backend->name() << "\n";
  if (auto d = backend->detail(); !d.empty()) out << "backend_detail=" << d << "\n";
  const std::uint32_t iters = static_cast<std::uint32_t>(std::max(1, opts.noop_iterations));
  call(*vm, {PROBE_NOOP_TIMES, 50, 0, 0, 0});  // warm-up: the rings' pages are mapped
  auto noop = call(*vm, {PROBE_NOOP_TIMES, iters, 0, 0, 0});
  require(noop, "the NOOP loop");
  auto exits = call(*vm, {PROBE_EXIT_TIMES, iters, 0, 0, 0});
  require(exits, "the MMIO exit loop");
  const double noop_us = p50_us(noop), exit_us = p50_us(exits);
  out << fmt::format("noop_roundtrip_us_p50={:.1f}\n", noop_us);
  out << fmt::format("mmio_exit_us_p50={:.1f}\n", exit_us);
  out << fmt::format("noop_over_exit={:.2f}\n", exit_us > 0 ? noop_us / exit_us : 0.0);

  // Short trials (about 0.1 s on 2 cores), guest and host alternating, the best of each counting:
  // the build machines are shared, and the best run is the one least disturbed by the rest.
  struct Size {
    std::uint32_t n, reps;
    int trials;
  };
  std::vector<Size> sizes = opts.quick
                                ? std::vector<Size>{{256, 20, 1}, {1024, 2, 1}}
                                : std::vector<Size>{{256, 150, 15}, {1024, 3, 15}, {2048, 1, 9}};
  for (auto [n, reps, trials] : sizes) {
    const std::uint32_t seed = 1000 + n;
    require(call(*vm, {PROBE_SGEMM_SETUP, n, n, n, seed}), "the SGEMM setup");
    auto first = call(*vm, {PROBE_SGEMM_RUN, 1, 0, 0, 0});  // also maps C's pages
    require(first, "the first SGEMM");

    std::vector<float> a(std::size_t{n} * n), b(std::size_t{n} * n), c(std::size_t{n} * n);
    std::uint32_t lcg = seed;
    fill(a, lcg);
    fill(b, lcg);
    SgemmArgs args;
    args.m = args.n = args.k = args.lda = args.ldb = args.ldc = n;
    args.a = a;
    args.b = b;
    args.c = c;
    if (auto r = backend->sgemm(args); !r.ok())
      throw std::runtime_error("the host SGEMM failed: " + r.message);
    bool match = first.body.size() == 64;
    for (std::size_t i = 0; match && i < 16; ++i) {
      float g;
      std::memcpy(&g, first.body.data() + 4 * i, 4);
      match = std::abs(g - c[i]) <= 1e-3f * (1.0f + std::abs(c[i]));
    }

    double guest = 1e30, host = 1e30;
    for (int t = 0; t < trials; ++t) {
      auto t0 = Clock::now();
      require(call(*vm, {PROBE_SGEMM_RUN, reps, 0, 0, 0}), "the SGEMM loop");
      guest = std::min(guest, seconds_since(t0));
      t0 = Clock::now();
      for (std::uint32_t r = 0; r < reps; ++r) backend->sgemm(args);
      host = std::min(host, seconds_since(t0));
    }
    const double flop = 2.0 * n * n * n * reps;
    out << fmt::format("sgemm_{}_guest_gflops={:.1f}\n", n, flop / guest / 1e9);
    out << fmt::format("sgemm_{}_host_gflops={:.1f}\n", n, flop / host / 1e9);
    out << fmt::format("sgemm_{}_results_match={}\n", n, match ? 1 : 0);
    out << fmt::format("sgemm_{}_guest_over_host={:.3f}\n", n, host / guest);
    out.flush();
  }
  return 0;
}

}  // namespace unifn::accel::bench
