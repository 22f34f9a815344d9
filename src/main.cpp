// unifnd: the unifn daemon and its subcommands (check-config, run, bench, bench-accel).
#include "src/cli/command_line.h"

int main(int argc, char** argv) { return unifn::cli::unifnd_main(argc, argv); }
