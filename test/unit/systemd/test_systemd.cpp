// systemd's notify protocol against a real AF_UNIX datagram socket standing in for systemd.
#include <catch2/catch.hpp>

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "src/systemd/notifier.h"

using namespace std::chrono_literals;
using unifn::systemd::Notifier;
using unifn::systemd::Watchdog;

namespace {

// A datagram socket at a temporary path, named by NOTIFY_SOCKET while it lives.
class FakeSystemd {
 public:
  FakeSystemd() {
    char tmpl[] = "/tmp/unifn-notify-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/notify.sock";
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path_.c_str());
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) ==
            0);  // Safe: sockaddr_un as sockaddr.
    timeval tv{0, 100000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }
  ~FakeSystemd() {
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    close(fd_);
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  // The next datagram, or "" after about 100 ms of silence.
  std::string next() {
    char buf[4096];
    auto n = recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }

 private:
  std::string dir_, path_;
  int fd_ = -1;
};

std::uint64_t monotonic_usec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace

TEST_CASE("READY, STATUS, RELOADING with MONOTONIC_USEC, STOPPING and WATCHDOG reach the socket") {
  FakeSystemd sd;
  Notifier n;
  CHECK(n.enabled());
  CHECK(n.ready("serving 3 functions on 127.0.0.1:8080"));
  CHECK(sd.next() == "READY=1\nSTATUS=serving 3 functions on 127.0.0.1:8080");
  CHECK(n.ready());
  CHECK(sd.next() == "READY=1");
  CHECK(n.status("reloading\ninjected=1"));
  CHECK(sd.next() == "STATUS=reloading injected=1");  // one line: no assignment smuggled in

  auto before = monotonic_usec();
  CHECK(n.reloading());
  auto after = monotonic_usec();
  auto msg = sd.next();
  REQUIRE_THAT(msg, Catch::StartsWith("RELOADING=1\nMONOTONIC_USEC="));
  auto usec = std::stoull(msg.substr(std::string("RELOADING=1\nMONOTONIC_USEC=").size()));
  CHECK(usec >= before);
  CHECK(usec <= after);

  CHECK(n.stopping());
  CHECK(sd.next() == "STOPPING=1");
  CHECK(n.watchdog());
  CHECK(sd.next() == "WATCHDOG=1");
  CHECK(sd.next().empty());
}

TEST_CASE("without NOTIFY_SOCKET everything is a quiet success") {
  unsetenv("NOTIFY_SOCKET");
  setenv("WATCHDOG_USEC", "200000", 1);
  Notifier n;
  CHECK(!n.enabled());
  CHECK(n.ready("x"));
  CHECK(n.reloading());
  CHECK(n.stopping());
  CHECK(n.status("x"));
  CHECK(n.watchdog());
  CHECK(n.watchdog_interval().count() == 0);
  Watchdog w(n);
  CHECK(!w.running());
  unsetenv("WATCHDOG_USEC");
}

TEST_CASE("WATCHDOG=1 arrives every half of WATCHDOG_USEC while the Watchdog lives") {
  FakeSystemd sd;
  setenv("WATCHDOG_USEC", "200000", 1);
  Notifier n;
  CHECK(n.watchdog_interval() == 200000us);
  std::vector<std::chrono::steady_clock::time_point> at;
  {
    Watchdog w(n);
    REQUIRE(w.running());
    CHECK(w.period() == 100000us);
    for (int i = 0; i < 50 && at.size() < 5; ++i) {
      auto m = sd.next();
      if (m.empty()) continue;
      CHECK(m == "WATCHDOG=1");
      at.push_back(std::chrono::steady_clock::now());
    }
  }
  REQUIRE(at.size() == 5);
  // About 100 ms apart; generous bounds for a loaded machine.
  auto span = at.back() - at.front();
  CHECK(span >= 300ms);
  CHECK(span <= 1200ms);
  // Once the Watchdog is gone, silence (one may have been in flight).
  sd.next();
  CHECK(sd.next().empty());
  CHECK(sd.next().empty());
}

TEST_CASE("no watchdog thread without WATCHDOG_USEC, or when WATCHDOG_PID names another process") {
  FakeSystemd sd;
  unsetenv("WATCHDOG_USEC");
  Notifier n;
  {
    Watchdog w(n);
    CHECK(!w.running());
  }
  setenv("WATCHDOG_USEC", "200000", 1);
  setenv("WATCHDOG_PID", std::to_string(getpid() + 1).c_str(), 1);
  {
    Watchdog w(n);
    CHECK(!w.running());
  }
  unsetenv("WATCHDOG_PID");
  CHECK(sd.next().empty());
}
