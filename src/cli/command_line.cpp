// The one parser of unifnd's command line: each command adds its own flags (add_*_options) and runs
// from the options it filled.
#include "src/cli/command_line.h"

#include <CLI/CLI.hpp>

#include "src/cli/bench_accel_command.h"
#include "src/cli/bench_command.h"
#include "src/cli/daemon_command.h"
#include "src/cli/run_command.h"

namespace unifn::cli {

int unifnd_main(int argc, char** argv) {
  CLI::App app("unifnd: serverless functions as unikernels, each call served from a snapshot",
               "unifnd");
  app.set_version_flag("--version", UNIFN_VERSION);
  DaemonOptions daemon;
  add_daemon_options(app, daemon);

  DaemonOptions checked;
  auto* check = app.add_subcommand("check-config",
                                   "check the daemon's file and every drop-in, serve nothing");
  add_daemon_options(*check, checked);
  RunOptions run;
  auto* run_cmd = app.add_subcommand(
      "run", "boot one image and answer one request (or relay a kernel's serial port)");
  add_run_options(*run_cmd, run);
  BenchOptions bench;
  auto* bench_cmd =
      app.add_subcommand("bench", "cold boot, restore and invocation figures of one image");
  add_bench_options(*bench_cmd, bench);
  BenchAccelOptions bench_accel;
  auto* bench_accel_cmd = app.add_subcommand(
      "bench-accel", "the accelerator's round trip and SGEMM, guest against host");
  add_bench_accel_options(*bench_accel_cmd, bench_accel);
  app.require_subcommand(0, 1);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code =
        app.exit(e);  // prints help or version to stdout, an error and "Run with --help" to stderr
    return code == 0 ? 0 : 2;
  }
  if (*check) return check_config_command(checked);
  if (*run_cmd) return run_command(run);
  if (*bench_cmd) return bench_command(bench);
  if (*bench_accel_cmd) return bench_accel_command(bench_accel);
  return daemon_command(daemon);
}

}  // namespace unifn::cli
