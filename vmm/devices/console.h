// Guest console output, cut into lines and handed to a sink (stderr, the daemon's log).
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace unifn::vmm {

// Lines reach the sink escaped (Console::escape), so that a guest cannot move the cursor, clear
// the screen or retitle a terminal that shows the log, nor make a line of its own look like it
// ended early and a line of the daemon's began.
class Console {
 public:
  using Sink = std::function<void(std::string_view line)>;
  explicit Console(Sink sink = {}) : sink_(std::move(sink)) {}
  void set_sink(Sink sink) { sink_ = std::move(sink); }
  void write(std::span<const std::uint8_t> bytes);
  void flush();  // emits a last unterminated line
  std::size_t bytes_written() const { return total_; }

  // line with every control character escaped: CR as \r, the other C0 controls and DEL as \xNN
  // (ESC is \x1b), C1 controls encoded in UTF-8 as \u0080-\u009f, bytes that are not UTF-8 as
  // \xNN. HTAB, printable ASCII and valid UTF-8 stay as they are; a backslash is not escaped, so
  // the guest's own text reads unchanged (a literal "\x1b" in it reads the same, and is harmless).
  // Lines are cut at kMaxLine bytes before escaping: an escaped line is at most 4 times that.
  static std::string escape(std::string_view line);

 private:
  static constexpr std::size_t kMaxLine = 4096;  // longer lines are cut, never buffered forever
  void emit();                                   // the line, escaped, to the sink; then cleared
  Sink sink_;
  std::string line_;
  std::size_t total_ = 0;
};

}  // namespace unifn::vmm
