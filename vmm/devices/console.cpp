// Line buffering for guest console output.
#include "devices/console.h"

namespace unifn::vmm {

void Console::write(std::span<const std::uint8_t> bytes) {
  total_ += bytes.size();
  for (auto b : bytes) {
    if (b == '\n' || line_.size() >= kMaxLine) {
      if (sink_) sink_(line_);
      line_.clear();
      if (b == '\n') continue;
    }
    line_.push_back(static_cast<char>(b));
  }
}

void Console::flush() {
  if (!line_.empty() && sink_) sink_(line_);
  line_.clear();
}

}  // namespace unifn::vmm
