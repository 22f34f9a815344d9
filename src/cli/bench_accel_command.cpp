// `unifnd bench-accel`: finds the probe guest beside unifnd (build tree or installed) and runs
// accel::bench, then the classify benchmark.
#include "src/cli/bench_accel_command.h"

#include <exception>
#include <filesystem>
#include <iostream>
#include <string>

#include <fmt/format.h>

#include "accel/bench/accel_bench.h"
#include "accel/registry.h"
#include "src/cli/bench_classify.h"
#include "src/cli/flags.h"

namespace unifn::cli {

namespace fs = std::filesystem;

namespace {

// functions/bench/accel_probe.elf next to a build tree's unifnd, or in <prefix>/lib/unifn when
// installed.
std::string find_probe() {
  std::error_code ec;
  auto dir = fs::canonical("/proc/self/exe", ec).parent_path();
  for (auto candidate : {dir / "functions/bench/accel_probe.elf",
                         dir / "../lib/unifn/functions/bench/accel_probe.elf"})
    if (fs::is_regular_file(candidate, ec)) return candidate.lexically_normal().string();
  return {};
}

}  // namespace

void add_bench_accel_options(CLI::App& cmd, BenchAccelOptions& o) {
  cmd.add_option("--backend", o.backend, "the backend measured, as an item of accel")
      ->check(backend_setting())
      ->capture_default_str();
  cmd.add_flag("--quick", o.quick, "fewer repetitions and no 2048 (for smoke tests)");
  cmd.add_option("--probe", o.probe, "the accel_probe guest (default: the one beside unifnd)")
      ->check(CLI::ExistingFile);
  cmd.add_option("--platform", o.platform,
                 "where the probe guest runs (default: $UNIFN_PLATFORM, else auto)")
      ->check(platform_setting());
}

int bench_accel_command(const BenchAccelOptions& o) {
  accel::bench::Options opts;
  opts.backend = o.backend;
  opts.quick = o.quick;
  opts.probe_image = o.probe;
  const std::optional<std::string>& platform_name = o.platform;
  if (opts.probe_image.empty()) opts.probe_image = find_probe();
  if (opts.probe_image.empty()) {
    fmt::print(stderr,
               "unifnd bench-accel: the probe guest accel_probe.elf is not beside unifnd; name it "
               "with --probe\n");
    return 2;
  }
  try {
    const auto platform = choose_tool_platform(platform_name);
    if (!platform.warning.empty())
      fmt::print(stderr, "unifnd bench-accel: warning: {}\n", platform.warning);
    opts.platform = platform.platform;
    std::cout << "platform=" << platform.platform->name() << "\n";
    if (int rc = accel::bench::run(opts, std::cout, std::cerr); rc != 0) return rc;
    // The classify example against the same preparation and model called in the host.
    ClassifyBenchOptions c;
    c.backend = accel::BackendRegistry::global().get(opts.backend);
    c.image = find_classify_image();
    c.model = find_classify_model();
    c.platform = platform.platform;
    c.quick = o.quick;
    if (!c.backend->runs_models()) {
      fmt::print(stderr, "unifnd bench-accel: the {} backend runs no models: no classify figures\n",
                 opts.backend);
    } else if (c.image.empty() || c.model.empty()) {
      fmt::print(stderr,
                 "unifnd bench-accel: classify.elf or its model models/fashion_cnn.onnx is not "
                 "beside unifnd: no classify figures\n");
    } else {
      bench_classify(c, std::cout);
    }
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "unifnd bench-accel: {}\n", e.what());
    return 1;
  }
}

}  // namespace unifn::cli
