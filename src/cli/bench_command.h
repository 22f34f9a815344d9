// `unifnd bench IMAGE [--accel cpu|cuda|none]`: cold boot, snapshot restore and invocation cycle figures, one key=value a line.
#pragma once

#include <span>

namespace unifn::cli {

int bench_command(std::span<char*> args);

}  // namespace unifn::cli
