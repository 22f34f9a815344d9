// `unifnd [--listen HOST:PORT] [--functions-dir DIR]...`: the HTTP daemon.
#pragma once

#include <span>

namespace unifn::cli {

int daemon_command(const char* argv0, std::span<char*> args);

}  // namespace unifn::cli
