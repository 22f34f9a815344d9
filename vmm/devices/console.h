// Guest console output, cut into lines and handed to a sink (stderr, the daemon's log), within
// limits.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace unifn::vmm {

// How much console output a guest gets; the one definition the system calls, the hypercalls and
// the console use. Output beyond a limit is dropped and counted, and the log says so once (per
// request, or per instance for the rate): "[unifn] console output over <limit>: <n> bytes dropped".
struct ConsoleLimits {
  // Bytes one write, writev or CONSOLE_WRITE hands over. write(2) answers a short count beyond it,
  // as Linux does on a pipe (whose buffer is 64 KiB), and musl's stdio writes the rest in its next
  // call: so the work of one exit is bounded, whatever length the guest names.
  static constexpr std::size_t kPerCall = 64 << 10;
  // Bytes that reach the log in one request (booting counts as one): far above what a function
  // logs on purpose, and small enough that a loop of prints costs one exit per 64 KiB and no log.
  static constexpr std::size_t kPerRequest = 1 << 20;
  // Per instance, across its requests: a token bucket of bytes and lines a second, so that one
  // tenant's instance cannot fill the daemon's log queue (and journald's rate limit, 10,000 lines
  // in 30 s per service by default) with a stream of short requests. It holds a request's bytes.
  static constexpr std::size_t kBytesPerSecond = 256 << 10;
  static constexpr std::size_t kLinesPerSecond = 1000;
  static constexpr std::size_t kBurstBytes = kPerRequest;
  static constexpr std::size_t kBurstLines = 10000;
};

// Lines reach the sink escaped (Console::escape), so that a guest cannot move the cursor, clear
// the screen or retitle a terminal that shows the log, nor make a line of its own look like it
// ended early and a line of the daemon's began.
class Console {
 public:
  using Sink = std::function<void(std::string_view line)>;
  // What the VMM's own lines start with. The log tells them from the guest's by it (a warning, not
  // the guest's info), so escape() never lets a guest line start with it.
  static constexpr std::string_view kVmmPrefix = "[unifn] ";
  using Clock = std::chrono::steady_clock;
  // clock: what the rate limit measures time with (tests pass their own).
  explicit Console(Sink sink = {}, std::function<Clock::time_point()> clock = Clock::now);
  void set_sink(Sink sink) { sink_ = std::move(sink); }
  // Asked between lines: once it answers true (the call's deadline passed, it was cancelled), the
  // rest of the write is dropped, so that a slow sink cannot hold the vCPU past either.
  void set_stop(std::function<bool()> stop) { stop_ = std::move(stop); }

  // Takes at most ConsoleLimits::kPerCall bytes from the front of bytes (write(2)) and answers how
  // many it took; those over the request's limit or the rate are taken and dropped.
  std::size_t write(std::span<const std::uint8_t> bytes);
  // All of bytes as one call that cannot answer a short count (CONSOLE_WRITE): what write() does
  // not take is dropped and counted.
  void put(std::span<const std::uint8_t> bytes);
  void flush();  // emits a last unterminated line
  // A line of the VMM's own, after the guest's unfinished one: kVmmPrefix and text, not escaped,
  // and not counted against the guest's limits.
  void say(std::string_view text);
  // A request ends (or booting does): the last line is flushed, each limit that dropped output in
  // it says so in one line (the rate only the first time), and the request's count starts again.
  void end_request();

  std::size_t bytes_written() const { return taken_; }  // taken from the guest
  std::size_t bytes_dropped() const {
    return dropped_;
  }  // of those (and put()'s rest), never shown

  // line with every control character escaped: CR as \r, the other C0 controls and DEL as \xNN
  // (ESC is \x1b), C1 controls encoded in UTF-8 as \u0080-\u009f, bytes that are not UTF-8 as
  // \xNN. HTAB, printable ASCII and valid UTF-8 stay as they are; a backslash is not escaped, so
  // the guest's own text reads unchanged (a literal "\x1b" in it reads the same, and is harmless).
  // A line that starts with kVmmPrefix has its '[' written \x5b: no guest line passes for the
  // VMM's. Lines are cut at kMaxLine bytes before escaping: an escaped line is at most 4 times
  // that.
  static std::string escape(std::string_view line);

 private:
  static constexpr std::size_t kMaxLine = 4096;  // longer lines are cut, never buffered forever
  void emit(bool newline);  // the line, escaped, to the sink (rate allowing); then cleared
  void refill();            // the rate's tokens for the time since the last call
  Sink sink_;
  std::function<Clock::time_point()> clock_;
  std::function<bool()> stop_;
  std::string line_;
  std::size_t taken_ = 0, dropped_ = 0;
  // This request: bytes taken, and dropped over each limit.
  std::size_t request_bytes_ = 0, over_request_ = 0, over_call_ = 0, over_rate_ = 0;
  // This instance: the rate's tokens, when they were last refilled, whether the log said so.
  double byte_tokens_ = ConsoleLimits::kBurstBytes, line_tokens_ = ConsoleLimits::kBurstLines;
  Clock::time_point refilled_;
  bool rate_said_ = false;
};

}  // namespace unifn::vmm
