// unifnd: the unifn daemon and its subcommands (run, bench, check-config).
#include <cstdio>
#include <cstring>
#include <span>

#include "cli/bench_command.h"
#include "cli/run_command.h"

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "run") == 0) return unifn::cli::run_command(std::span(argv + 2, argc - 2));
  if (argc >= 2 && std::strcmp(argv[1], "bench") == 0) return unifn::cli::bench_command(std::span(argv + 2, argc - 2));
  std::fprintf(stderr, "usage: unifnd run IMAGE [options]\n");
  return 2;
}
