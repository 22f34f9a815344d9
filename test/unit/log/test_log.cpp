// The daemon's logger (issue 10, item 2): log_level filters, journald's priority prefixes, a reader
// that never reads costs the callers nothing (the oldest lines go, and are counted), a closed
// reader is counted, and the sink's write survives EINTR.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <regex>
#include <string>
#include <thread>

#include "src/log/log.h"
#include "src/metrics/metrics.h"

using namespace unifn::log;
using namespace std::chrono_literals;

namespace {

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    close_read();
    close_write();
  }
  void close_read() {
    if (r >= 0) ::close(r);
    r = -1;
  }
  void close_write() {
    if (w >= 0) ::close(w);
    w = -1;
  }
  // Everything written so far, without waiting for more.
  std::string drain() {
    fcntl(r, F_SETFL, fcntl(r, F_GETFL) | O_NONBLOCK);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(r, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    return out;
  }
  // Writes until the pipe holds all it can; returns how much that was.
  std::size_t fill() {
    fcntl(w, F_SETFL, fcntl(w, F_GETFL) | O_NONBLOCK);
    const std::string chunk(4096, 'x');
    std::size_t filled = 0;
    for (ssize_t n; (n = ::write(w, chunk.data(), chunk.size())) > 0;)
      filled += static_cast<std::size_t>(n);
    fcntl(w, F_SETFL, fcntl(w, F_GETFL) & ~O_NONBLOCK);
    return filled;
  }
  // Everything until the write end closes.
  std::string read_to_end() {
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(r, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    return out;
  }
};

void write_each_level(Logger& l) {
  l.write(Level::debug, "a debug line");
  l.write(Level::info, "an info line");
  l.write(Level::warning, "a warning line");
  l.write(Level::error, "an error line");
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::atomic<int> interrupts{0};
void on_signal(int) { interrupts.fetch_add(1); }

char thread_state(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), {});
  auto paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ? '?' : stat[paren + 2];
}

}  // namespace

TEST_CASE("log_level names are the ones unifn.yaml takes") {
  CHECK(parse_level("debug") == Level::debug);
  CHECK(parse_level("info") == Level::info);
  CHECK(parse_level("warning") == Level::warning);
  CHECK(parse_level("error") == Level::error);
  CHECK_FALSE(parse_level("warn").has_value());
  CHECK_FALSE(parse_level("").has_value());
  for (auto l : {Level::debug, Level::info, Level::warning, Level::error})
    CHECK(parse_level(level_name(l)) == l);
}

TEST_CASE("lines below the level are not written, and set_level changes the level") {
  Pipe p;
  Logger l({.fd = p.w, .level = Level::warning, .journal = false});
  write_each_level(l);
  REQUIRE(l.flush(30s));
  auto out = p.drain();
  CHECK_FALSE(has(out, "debug line"));
  CHECK_FALSE(has(out, "info line"));
  CHECK(has(out, " warning a warning line\n"));
  CHECK(has(out, " error an error line\n"));

  l.set_level(Level::error);
  CHECK(l.level() == Level::error);
  write_each_level(l);
  REQUIRE(l.flush(30s));
  out = p.drain();
  CHECK_FALSE(has(out, "warning line"));
  CHECK(has(out, " error an error line\n"));

  l.set_level(Level::debug);
  write_each_level(l);
  REQUIRE(l.flush(30s));
  out = p.drain();
  CHECK(has(out, " debug a debug line\n"));
  CHECK(has(out, " info an info line\n"));
  CHECK(l.dropped_lines() == 0);
}

TEST_CASE("outside the journal a line carries its time and level") {
  Pipe p;
  Logger l({.fd = p.w, .journal = false});
  l.write(Level::info, "unifnd: listening on {}:{}", "127.0.0.1", 8080);
  REQUIRE(l.flush(30s));
  auto out = p.drain();
  CHECK(std::regex_match(
      out, std::regex("[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3} "
                      "info unifnd: listening on 127\\.0\\.0\\.1:8080\n")));
}

TEST_CASE("in the journal each line starts with its syslog priority and carries no time") {
  Pipe p;
  Logger l({.fd = p.w, .level = Level::debug, .journal = true});
  write_each_level(l);
  REQUIRE(l.flush(30s));
  CHECK(p.drain() == "<7>a debug line\n<6>an info line\n<4>a warning line\n<3>an error line\n");
  // A message of several lines: each keeps the priority.
  l.write(Level::warning, "first\nsecond");
  REQUIRE(l.flush(30s));
  CHECK(p.drain() == "<4>first\n<4>second\n");
}

TEST_CASE("the journal is recognised by $JOURNAL_STREAM naming the descriptor's device and inode") {
  Pipe p;
  struct stat st {};
  REQUIRE(fstat(p.w, &st) == 0);
  const auto dev = std::to_string(st.st_dev), ino = std::to_string(st.st_ino);
  CHECK(is_journal_stream(p.w, (dev + ":" + ino).c_str()));
  CHECK_FALSE(is_journal_stream(p.w, (dev + ":" + std::to_string(st.st_ino + 1)).c_str()));
  CHECK_FALSE(is_journal_stream(p.w, (dev + ":" + ino + "x").c_str()));
  CHECK_FALSE(is_journal_stream(p.w, ino.c_str()));
  CHECK_FALSE(is_journal_stream(p.w, ""));
  CHECK_FALSE(is_journal_stream(p.w, nullptr));
  // The journal's format follows the descriptor when nothing is said.
  setenv("JOURNAL_STREAM", (dev + ":" + ino).c_str(), 1);
  {
    Logger l({.fd = p.w});
    l.write(Level::warning, "w");
    REQUIRE(l.flush(30s));
  }
  unsetenv("JOURNAL_STREAM");
  CHECK(p.drain() == "<4>w\n");
}

TEST_CASE("a reader that never reads: callers return, the oldest lines are dropped and counted") {
  Pipe p;  // nobody reads it, and it is full: the writer thread blocks on its first line
  const std::size_t filled = p.fill();
  constexpr int kLines = 100000;
  constexpr std::size_t kQueue = 64;
  Logger l({.fd = p.w, .queue_lines = kQueue, .journal = true});
  for (int i = 0; i < kLines; ++i) l.write(Level::info, "flood {:06} {:-<80}", i, "");
  // Reaching here at all is the point: 100000 lines against a 64-line queue whose writer is
  // blocked. All but the queue's and the one being written were dropped, and counted.
  CHECK(l.dropped_lines() >= kLines - kQueue - 1);

  // Once someone reads, what survived comes out: the newest lines, up to the last one.
  std::string got;
  std::thread reader([&] { got = p.read_to_end(); });
  REQUIRE(l.flush(30s));
  p.close_write();
  reader.join();
  REQUIRE(got.size() >= filled);
  got.erase(0, filled);
  CHECK(got.ends_with(fmt::format("<6>flood {:06} {:-<80}\n", kLines - 1, "")));
  const auto written = static_cast<std::uint64_t>(std::count(got.begin(), got.end(), '\n'));
  CHECK(written <= kQueue + 1);
  CHECK(written + l.dropped_lines() == kLines);
}

TEST_CASE("a logger whose reader never reads is destroyed without waiting for it") {
  // Never closed: the writer left behind must stay blocked on this pipe, not go on writing its
  // queue to whatever later reuses the descriptor's number.
  static Pipe* p = new Pipe;
  p->fill();  // the first line written blocks
  {
    Logger l({.fd = p->w, .queue_lines = 16, .journal = true, .stop_wait = 50ms});
    for (int i = 0; i < 10000; ++i) l.write(Level::info, "stuck {:-<100}", i);
    CHECK_FALSE(l.flush(50ms));
    CHECK(l.dropped_lines() > 0);
  }  // returns after stop_wait, the writer still blocked
}

TEST_CASE(
    "a reader that is gone: every line is counted as dropped, the daemon is not killed by "
    "SIGPIPE") {
  Pipe p;
  p.close_read();
  Logger l({.fd = p.w, .journal = true});
  for (int i = 0; i < 10; ++i) l.write(Level::error, "line {}", i);
  REQUIRE(l.flush(30s));
  CHECK(l.dropped_lines() == 10);
}

TEST_CASE(
    "the sink's write retries a write(2) interrupted by a signal (EINTR) instead of failing or "
    "throwing") {
  Pipe p;
  const std::size_t filled = p.fill();  // the next write blocks

  // Like the VMM's kick: a handler without SA_RESTART, so a blocked write returns EINTR.
  struct sigaction sa {
  }, old{};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  REQUIRE(sigaction(SIGUSR1, &sa, &old) == 0);

  std::atomic<pid_t> tid{0};
  std::atomic<bool> ok{false};
  std::thread writer([&] {
    tid = gettid();
    ok = write_all(p.w, "after the interruption\n");
  });
  while (tid == 0 || thread_state(tid) != 'S') std::this_thread::yield();  // blocked in write(2)
  pthread_kill(writer.native_handle(), SIGUSR1);
  while (interrupts == 0) std::this_thread::yield();

  // Room again: a write that was retried completes now; one that gave up has returned already.
  std::string got;
  while (got.size() < filled) {
    char buf[4096];
    auto n = ::read(p.r, buf, std::min(sizeof buf, filled - got.size()));
    REQUIRE(n > 0);
    got.append(buf, static_cast<std::size_t>(n));
  }
  writer.join();
  sigaction(SIGUSR1, &old, nullptr);
  CHECK(ok);
  CHECK(p.drain() == "after the interruption\n");
}

TEST_CASE("GET /metrics shows the logger's dropped lines") {
  unifn::metrics::Metrics m;
  CHECK_THAT(m.serialize(), Catch::Contains("# TYPE unifn_log_dropped_lines_total counter"));
  CHECK_THAT(m.serialize(), Catch::Contains(fmt::format("\nunifn_log_dropped_lines_total {}\n",
                                                        global().dropped_lines())));
}
