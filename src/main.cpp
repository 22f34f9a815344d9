// unifnd: the unifn daemon and its subcommands (run, bench, bench-accel, check-config).
#include <cstdio>
#include <cstring>
#include <span>

#include "cli/bench_accel_command.h"
#include "cli/bench_command.h"
#include "cli/daemon_command.h"
#include "cli/run_command.h"

int main(int argc, char** argv) {
  std::span<char*> rest(argv + 1, static_cast<std::size_t>(argc - 1));
  if (argc >= 2 && std::strcmp(argv[1], "run") == 0) return unifn::cli::run_command(rest.subspan(1));
  if (argc >= 2 && std::strcmp(argv[1], "bench") == 0) return unifn::cli::bench_command(rest.subspan(1));
  if (argc >= 2 && std::strcmp(argv[1], "bench-accel") == 0) return unifn::cli::bench_accel_command(rest.subspan(1));
  if (argc >= 2 && std::strcmp(argv[1], "check-config") == 0) return unifn::cli::check_config_command(rest.subspan(1));
  if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::puts("usage: unifnd [--config FILE] [--listen HOST:PORT] [--state-dir DIR] [--functions-dir DIR]...\n"
              "              [--platform auto|kvm|sandbox]\n"
              "       unifnd check-config [--config FILE]\n"
              "       unifnd run IMAGE [--input FILE|-] [--memory MB] [--timeout-ms N] [--cmdline STR] [--state-dir DIR]\n"
              "              [--platform auto|kvm|sandbox]\n"
              "       unifnd bench IMAGE [--requests N] [--boots N] [--isolation per-request|reuse] [--accel cpu|cuda|none]\n"
              "              [--platform auto|kvm|sandbox]\n"
              "       unifnd bench-accel [--backend cpu|cuda] [--quick] [--probe IMAGE] [--platform auto|kvm|sandbox]");
    return 0;
  }
  return unifn::cli::daemon_command(argv[0], rest);
}
