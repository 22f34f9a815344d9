// `unifnd [--config FILE]`: the HTTP daemon; `unifnd check-config`: validate without serving.
#pragma once

#include <span>

namespace unifn::cli {

int daemon_command(const char* argv0, std::span<char*> args);
int check_config_command(std::span<char*> args);

}  // namespace unifn::cli
