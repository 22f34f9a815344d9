// unifnd's command line (CLI11): the daemon's flags at the top, and the subcommands check-config,
// run, bench and bench-accel, each with its own --help.
#pragma once

namespace unifn::cli {

// Parses argv and runs what it names; returns the process exit status: 0 for --help and --version,
// 2 with the reason and a pointer to --help for a command line that does not parse.
int unifnd_main(int argc, char** argv);

}  // namespace unifn::cli
