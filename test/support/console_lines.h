// What a guest console's sink received in a test: the VMM's own lines (Console::kVmmPrefix) told
// apart from the guest's.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/devices/console.h"

namespace unifn::test {

struct ConsoleLines {
  std::vector<std::string> lines;

  void add(std::string_view line) { lines.emplace_back(line); }
  static bool own(const std::string& line) { return line.starts_with(vmm::Console::kVmmPrefix); }
  // How many of the VMM's own lines hold part.
  std::size_t said(const std::string& part) const {
    return static_cast<std::size_t>(std::count_if(
        lines.begin(), lines.end(),
        [&](const std::string& l) { return own(l) && l.find(part) != std::string::npos; }));
  }
  // The bytes of the guest's lines, one more for each line's end.
  std::size_t guest_bytes() const {
    std::size_t n = 0;
    for (const auto& l : lines)
      if (!own(l)) n += l.size() + 1;
    return n;
  }
};

}  // namespace unifn::test
