// Guest console output, cut into lines and handed to a sink (stderr, the daemon's log).
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace unifn::vmm {

class Console {
 public:
  using Sink = std::function<void(std::string_view line)>;
  explicit Console(Sink sink = {}) : sink_(std::move(sink)) {}
  void set_sink(Sink sink) { sink_ = std::move(sink); }
  void write(std::span<const std::uint8_t> bytes);
  void flush();  // emits a last unterminated line
  std::size_t bytes_written() const { return total_; }

 private:
  static constexpr std::size_t kMaxLine = 4096;  // longer lines are cut, never buffered forever
  Sink sink_;
  std::string line_;
  std::size_t total_ = 0;
};

}  // namespace unifn::vmm
