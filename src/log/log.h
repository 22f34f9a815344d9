// The daemon's one logger: levels, a bounded async queue that never blocks a caller, journald
// priorities.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace unifn::log {

enum class Level { debug, info, warning, error };

// The values of log_level in unifn.yaml: "debug", "info", "warning" or "error"; nullopt for others.
std::optional<Level> parse_level(std::string_view name);
std::string_view level_name(Level level);

// True when fd is the stream systemd connected to journald: $JOURNAL_STREAM ("DEVICE:INODE", see
// systemd.exec(5)) names its device and inode. journal_stream may be null (not under systemd).
bool is_journal_stream(int fd, const char* journal_stream);

// Writes all of bytes to fd, retrying on EINTR and short writes; false (never an exception) when
// the descriptor fails otherwise (a closed pipe, a bad descriptor). This is the sink's write.
bool write_all(int fd, std::string_view bytes) noexcept;

struct Options {
  int fd = STDERR_FILENO;  // not closed by the logger
  Level level = Level::info;
  std::size_t queue_lines = 8192;
  // "<N>" syslog priority prefixes and no time, which journald turns into the entry's priority.
  // Unset: when fd is the journal stream systemd gave the process.
  std::optional<bool> journal;
  // How long flush() and the destructor wait for a writer that does not get its lines out.
  std::chrono::milliseconds stop_wait{2000};
};

// Lines are queued for one writer thread (spdlog's thread pool); a full queue overwrites its oldest
// line. Only that thread writes to fd, so a reader that stops reading (a stuck journald, a full
// pipe) stalls it and never a caller: a vCPU or an I/O thread only formats and enqueues. Every
// method is thread-safe and none throws.
class Logger {
 public:
  explicit Logger(Options options = {});
  // Waits up to stop_wait for the queued lines to be written; a writer stuck past it is left
  // behind (its thread and queue are never freed) rather than waited for.
  ~Logger();
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  void set_level(Level level) noexcept;
  Level level() const noexcept;
  bool enabled(Level level) const noexcept { return level >= this->level(); }

  void write(Level level, std::string_view line) noexcept;
  template <class... Args>
  void write(Level level, fmt::format_string<Args...> format, Args&&... args) noexcept {
    if (!enabled(level)) return;
    try {
      write(level, std::string_view(fmt::format(format, std::forward<Args>(args)...)));
    } catch (...) {
      count_failure();  // no memory for the line: it is lost, and counted
    }
  }

  // Waits until every line queued before the call is written (true) or timeout passes (false).
  bool flush(std::chrono::milliseconds timeout) noexcept;
  bool flush() noexcept;  // waiting up to stop_wait
  // Lines lost so far: overwritten in a full queue, or not written (the descriptor failed).
  std::uint64_t dropped_lines() const noexcept;

 private:
  void count_failure() noexcept;
  struct State;
  std::shared_ptr<State> s_;
};

// The daemon's logger: stderr (the journal under systemd), level info until set_level. Made on
// first use.
Logger& global();

template <class... Args>
void debug(fmt::format_string<Args...> format, Args&&... args) noexcept {
  global().write(Level::debug, format, std::forward<Args>(args)...);
}
template <class... Args>
void info(fmt::format_string<Args...> format, Args&&... args) noexcept {
  global().write(Level::info, format, std::forward<Args>(args)...);
}
template <class... Args>
void warning(fmt::format_string<Args...> format, Args&&... args) noexcept {
  global().write(Level::warning, format, std::forward<Args>(args)...);
}
template <class... Args>
void error(fmt::format_string<Args...> format, Args&&... args) noexcept {
  global().write(Level::error, format, std::forward<Args>(args)...);
}

}  // namespace unifn::log
