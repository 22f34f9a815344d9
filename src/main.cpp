// unifnd: the unifn daemon and its subcommands (run, bench).
#include <cstdio>
#include <cstring>
#include <span>

#include "cli/bench_command.h"
#include "cli/daemon_command.h"
#include "cli/run_command.h"

int main(int argc, char** argv) {
  std::span<char*> rest(argv + 1, static_cast<std::size_t>(argc - 1));
  if (argc >= 2 && std::strcmp(argv[1], "run") == 0) return unifn::cli::run_command(rest.subspan(1));
  if (argc >= 2 && std::strcmp(argv[1], "bench") == 0) return unifn::cli::bench_command(rest.subspan(1));
  if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::puts("usage: unifnd [--listen HOST:PORT] [--functions-dir DIR]... [--isolation per-request|reuse]\n"
              "       unifnd run IMAGE [--input FILE|-] [--memory MB] [--timeout-ms N] [--cmdline STR]\n"
              "       unifnd bench IMAGE [--requests N] [--boots N] [--isolation per-request|reuse]");
    return 0;
  }
  return unifn::cli::daemon_command(argv[0], rest);
}
