// The daemon's logger: an spdlog async logger over one sink that writes whole lines to a
// descriptor.
#include "src/log/log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <iterator>
#include <mutex>
#include <vector>

#include <fmt/chrono.h>
#include <spdlog/async_logger.h>
#include <spdlog/details/thread_pool.h>
#include <spdlog/sinks/base_sink.h>

namespace unifn::log {

namespace {

constexpr std::string_view kNames[] = {"debug", "info", "warning", "error"};  // indexed by Level

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::debug:
      return spdlog::level::debug;
    case Level::info:
      return spdlog::level::info;
    case Level::warning:
      return spdlog::level::warn;
    case Level::error:
      break;
  }
  return spdlog::level::err;
}

Level from_spdlog(spdlog::level::level_enum level) {
  if (level <= spdlog::level::debug) return Level::debug;
  if (level == spdlog::level::info) return Level::info;
  if (level == spdlog::level::warn) return Level::warning;
  return Level::error;
}

// The syslog priority journald reads from a "<N>" prefix (sd-daemon(3)): err 3, warning 4, info 6,
// debug 7.
int priority(Level level) {
  switch (level) {
    case Level::debug:
      return 7;
    case Level::info:
      return 6;
    case Level::warning:
      return 4;
    case Level::error:
      break;
  }
  return 3;
}

// Called by the writer thread only. Whatever happens to the descriptor, a line is written or
// counted as failed: nothing is thrown back into spdlog (whose handler would print to stderr).
class FdSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  FdSink(int fd, bool journal, std::atomic<std::uint64_t>& failed)
      : fd_(fd), journal_(journal), failed_(failed) {}

  std::uint64_t flushes() {
    std::lock_guard lock(flush_mu_);
    return flushes_;
  }
  bool wait_flush_after(std::uint64_t seen, std::chrono::milliseconds timeout) {
    std::unique_lock lock(flush_mu_);
    return flushed_.wait_for(lock, timeout, [&] { return flushes_ > seen; });
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    try {
      const Level level = from_spdlog(msg.level);
      const std::string_view text(msg.payload.data(), msg.payload.size());
      fmt::memory_buffer line;
      auto out = std::back_inserter(line);
      if (journal_) {
        // journald adds the time. Each line of a message gets the prefix, or journald would file
        // the lines after the first at its default priority.
        std::size_t start = 0;
        for (std::size_t nl; (nl = text.find('\n', start)) != std::string_view::npos;
             start = nl + 1)
          fmt::format_to(out, "<{}>{}\n", priority(level), text.substr(start, nl - start));
        fmt::format_to(out, "<{}>{}\n", priority(level), text.substr(start));
      } else {
        const std::time_t t = std::chrono::system_clock::to_time_t(msg.time);
        std::tm tm{};
        localtime_r(&t, &tm);
        const auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch())
                .count() %
            1000;
        fmt::format_to(out, "{:%Y-%m-%d %H:%M:%S}.{:03} {} {}\n", tm, ms, level_name(level), text);
      }
      if (!write_all(fd_, std::string_view(line.data(), line.size()))) ++failed_;
    } catch (...) {
      ++failed_;
    }
  }
  void flush_() override {
    std::lock_guard lock(flush_mu_);
    ++flushes_;
    flushed_.notify_all();
  }

 private:
  const int fd_;
  const bool journal_;
  std::atomic<std::uint64_t>& failed_;
  std::mutex flush_mu_;
  std::condition_variable flushed_;
  std::uint64_t flushes_ = 0;
};

// The writer thread takes no signals: the kick signal cannot interrupt its write, a closed pipe
// answers EPIPE instead of killing the daemon with SIGPIPE, and process-directed signals go to the
// threads that wait for them.
void block_signals() {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
}

}  // namespace

std::optional<Level> parse_level(std::string_view name) {
  for (std::size_t i = 0; i < std::size(kNames); ++i)
    if (kNames[i] == name) return static_cast<Level>(i);
  return std::nullopt;
}

std::string_view level_name(Level level) { return kNames[static_cast<std::size_t>(level)]; }

bool is_journal_stream(int fd, const char* journal_stream) {
  if (!journal_stream) return false;
  const std::string_view v(journal_stream);
  const auto colon = v.find(':');
  if (colon == std::string_view::npos) return false;
  unsigned long long dev = 0, ino = 0;
  const auto d = std::from_chars(v.data(), v.data() + colon, dev);
  const auto i = std::from_chars(v.data() + colon + 1, v.data() + v.size(), ino);
  if (d.ec != std::errc() || d.ptr != v.data() + colon || i.ec != std::errc() ||
      i.ptr != v.data() + v.size())
    return false;
  struct stat st {};
  return fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

bool write_all(int fd, std::string_view bytes) noexcept {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Members are destroyed bottom-up: the logger, then the pool (whose destructor lets its thread
// write what is queued and joins it), and only then the sink and the counter that thread uses.
struct Logger::State {
  std::chrono::milliseconds stop_wait{};
  std::atomic<std::uint64_t> failed{0};
  std::shared_ptr<FdSink> sink;
  std::shared_ptr<spdlog::details::thread_pool> pool;
  std::shared_ptr<spdlog::async_logger> logger;
};

Logger::Logger(Options o) : s_(std::make_shared<State>()) {
  s_->stop_wait = o.stop_wait;
  const bool journal = o.journal.value_or(is_journal_stream(o.fd, std::getenv("JOURNAL_STREAM")));
  s_->sink = std::make_shared<FdSink>(o.fd, journal, s_->failed);
  s_->pool = std::make_shared<spdlog::details::thread_pool>(o.queue_lines, 1, block_signals);
  s_->logger = std::make_shared<spdlog::async_logger>(
      "unifnd", s_->sink, s_->pool, spdlog::async_overflow_policy::overrun_oldest);
  // Formatting errors are caught by spdlog and handed here: counted, not printed to stderr.
  s_->logger->set_error_handler([failed = &s_->failed](const std::string&) { ++*failed; });
  s_->logger->set_level(to_spdlog(o.level));
}

Logger::~Logger() {
  if (flush()) return;
  // The writer is stuck in write(2) on a reader that does not read: joining it could take
  // forever, so its state is kept, reachable and never freed, and the caller goes on.
  static std::mutex mu;
  static auto* stuck = new std::vector<std::shared_ptr<State>>();
  std::lock_guard lock(mu);
  stuck->push_back(std::move(s_));
}

void Logger::set_level(Level level) noexcept { s_->logger->set_level(to_spdlog(level)); }

Level Logger::level() const noexcept { return from_spdlog(s_->logger->level()); }

void Logger::write(Level level, std::string_view line) noexcept {
  try {
    s_->logger->log(to_spdlog(level), spdlog::string_view_t(line.data(), line.size()));
  } catch (...) {
    count_failure();
  }
}

bool Logger::flush(std::chrono::milliseconds timeout) noexcept {
  try {
    const auto seen = s_->sink->flushes();
    s_->logger->flush();  // a flush message behind the lines queued so far
    return s_->sink->wait_flush_after(seen, timeout);
  } catch (...) {
    return false;
  }
}

bool Logger::flush() noexcept { return flush(s_->stop_wait); }

std::uint64_t Logger::dropped_lines() const noexcept {
  try {
    return s_->pool->overrun_counter() + s_->failed.load();
  } catch (...) {  // the queue's mutex could not be locked
    return s_->failed.load();
  }
}

void Logger::count_failure() noexcept { ++s_->failed; }

Logger& global() {
  static Logger logger;
  return logger;
}

}  // namespace unifn::log
