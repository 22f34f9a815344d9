// What the provider API keeps in the state directory beside its drop-ins: the scales, and the
// atomic file write every one of its files goes through.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "src/config/config.h"

namespace unifn::config {

// Writes bytes to path through a temporary dotfile in the same directory (ignored by the drop-in
// rules), fsync and rename: a reader sees the old file or the whole new one, never a part.
// Creates the directory (mode 0700) when missing. Throws std::system_error naming the file.
void write_file_atomically(const std::string& path, std::string_view bytes, unsigned mode = 0600);

// The scales in scales_file(d): function name -> warm instances. A missing file is no scales; a
// line that is not `name: N` is skipped (the file is only written by save_scales).
std::map<std::string, std::uint64_t> load_scales(const DaemonConfig& d);
void save_scales(const DaemonConfig& d, const std::map<std::string, std::uint64_t>& scales);

// min_warm as served: the scale when one is kept for the function (at most max_instances).
void apply_scale(FunctionConfig& f, const std::map<std::string, std::uint64_t>& scales);

}  // namespace unifn::config
