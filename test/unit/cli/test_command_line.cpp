// unifnd's flags parse into the options each command runs from, and a flag that names a config
// setting is refused by the rule the file's key is: the same value, the same sentence.
#include <catch2/catch.hpp>

#include <CLI/CLI.hpp>

#include "src/cli/bench_accel_command.h"
#include "src/cli/bench_command.h"
#include "src/cli/daemon_command.h"
#include "src/cli/run_command.h"
#include "src/config/checks.h"

using namespace unifn;

namespace {

// What CLI11 says of a command line that does not parse; empty when it parses.
template <typename Options, typename Add>
std::string refusal(Add add, const std::string& line, Options& o) {
  CLI::App app("test", "unifnd");
  add(app, o);
  try {
    app.parse(line, false);
  } catch (const CLI::ParseError& e) {
    return e.what();
  }
  return {};
}

std::string daemon(const std::string& line, cli::DaemonOptions& o) {
  return refusal(cli::add_daemon_options, line, o);
}
std::string daemon(const std::string& line) {
  cli::DaemonOptions o;
  return daemon(line, o);
}

}  // namespace

TEST_CASE("the daemon's flags fill its options, and --functions-dir repeats") {
  cli::DaemonOptions o;
  CHECK(daemon("--config /etc/x.yaml --listen [::1]:8080 --state-dir /var/s --functions-dir a "
               "--functions-dir b "
               "--platform sandbox",
               o)
            .empty());
  CHECK(o.config == "/etc/x.yaml");
  CHECK(o.listen == "[::1]:8080");
  CHECK(o.state_dir == "/var/s");
  CHECK(o.functions_dirs == std::vector<std::string>{"a", "b"});
  CHECK(o.platform == "sandbox");
  cli::DaemonOptions none;
  CHECK(daemon("", none).empty());
  CHECK(!none.listen);
  CHECK(!none.platform);
}

TEST_CASE("a --listen value is refused as the file's listen is, with the same sentence") {
  for (const std::string bad :
       {"0.0.0.0:70000", "127.0.0.1:abc", "localhost:80", "8080", "::1:80"}) {
    INFO(bad);
    const auto why = config::checks::listen(bad);
    REQUIRE(why);
    CHECK(daemon("--listen " + bad) == "--listen: " + *why);
  }
  CHECK(daemon("--listen 0.0.0.0:65535").empty());
  CHECK(daemon("--listen 127.0.0.1:0").empty());
}

TEST_CASE(
    "a --platform value is refused as the file's platform is, and unknown flags and missing values "
    "are refused") {
  CHECK(daemon("--platform xen") == "--platform: " + *config::checks::platform("xen"));
  CHECK(daemon("--bogus").find("--bogus") != std::string::npos);
  CHECK(!daemon("--listen").empty());
}

TEST_CASE(
    "run: IMAGE is required, and --memory, --timeout-ms and --cmdline are checked as the drop-in's "
    "keys") {
  cli::RunOptions o;
  auto run = [&](const std::string& line) { return refusal(cli::add_run_options, line, o); };
  CHECK(run("").find("IMAGE") != std::string::npos);
  CHECK(run("x.elf --memory lots") == "--memory: 'lots' is not a whole number");
  CHECK(run("x.elf --memory 4") ==
        "--memory: " + *config::checks::range(4, config::checks::kMemoryMb));
  CHECK(run("x.elf --memory 3073") ==
        "--memory: " + *config::checks::range(3073, config::checks::kMemoryMb));
  CHECK(run("x.elf --timeout-ms 0") ==
        "--timeout-ms: " + *config::checks::range(0, config::checks::kTimeoutMs));
  CHECK(run("x.elf --memory -1") != "");
  o = {};
  CHECK(run("x.elf --memory 128 --timeout-ms 250 --input - --cmdline=--v --state-dir /s --platform "
            "auto")
            .empty());
  CHECK(o.image == "x.elf");
  CHECK(o.memory_mb == 128);
  CHECK(o.timeout_ms == 250);
  CHECK(o.input == "-");
  CHECK(o.cmdline == "--v");
  CHECK(o.state_dir == "/s");
  CHECK(o.platform == "auto");
  CHECK(run("a.elf b.elf") != "");
}

TEST_CASE(
    "bench: isolation and accel are checked as the drop-in's keys, and none is a choice of "
    "--accel") {
  cli::BenchOptions o;
  auto bench = [&](const std::string& line) { return refusal(cli::add_bench_options, line, o); };
  CHECK(bench("x.elf --isolation shared") ==
        "--isolation: " + *config::checks::isolation("shared"));
  CHECK(bench("x.elf --accel tpu").find("--accel") == 0);
  CHECK(bench("x.elf --requests 0").find("--requests") == 0);
  CHECK(bench("x.elf --accel none --isolation reuse --requests 10 --boots 3").empty());
  CHECK(o.accel == "none");
  CHECK(o.isolation == "reuse");
  CHECK(o.requests == 10);
  CHECK(o.boots == 3);
  CHECK(bench("x.elf --accel cuda").empty());
}

TEST_CASE("bench-accel: --backend is a backend's name and --probe a file that exists") {
  cli::BenchAccelOptions o;
  auto bench = [&](const std::string& line) {
    return refusal(cli::add_bench_accel_options, line, o);
  };
  CHECK(bench("--backend tpu") == "--backend: " + *config::checks::backend("tpu"));
  CHECK(bench("--probe /nonexistent/probe.elf").find("--probe") == 0);
  CHECK(bench("--backend cuda --quick --probe /bin/sh").empty());
  CHECK(o.backend == "cuda");
  CHECK(o.quick);
  CHECK(o.probe == "/bin/sh");
}
