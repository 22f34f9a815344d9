// The real daemon under connection floods: 5,000 idle TCP connections leave it serving new clients
// below its open-file limit, and one address holding thousands cannot lock out another.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "test/e2e/daemon_fixture.h"
#include "test/support/platform_skip.h"

using namespace unifn::test;

namespace {

// The test opens this many idle connections, and the daemon runs with this open-file limit (soft
// and hard): without its connection limits it would run out of descriptors about 2,000 in.
constexpr int kIdle = 5000;
constexpr int kDaemonFiles = 2048;

// Raises this process's soft open-file limit to its hard one; skips the test when that is below
// need.
void need_open_files(rlim_t need) {
  rlimit files{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &files) == 0);
  if (files.rlim_max != RLIM_INFINITY && files.rlim_max < need)
    skip_test("the hard open-file limit is " + std::to_string(files.rlim_max) +
              ", and this test needs " + std::to_string(need) + " (ulimit -Hn)");
  files.rlim_cur = files.rlim_max;
  REQUIRE(setrlimit(RLIMIT_NOFILE, &files) == 0);
}

// A functions directory with the example echo function, and the misbehave guest with one instance.
struct Functions {
  TempDir dir;
  Functions() {
    std::ofstream(dir.str() + "/echo.yaml")
        << "name: echo\nimage: " << UNIFN_FUNCTIONS_DIR << "/echo.elf\n";
    std::ofstream(dir.str() + "/misbehave.yaml")
        << "name: misbehave\nimage: " << UNIFN_BUILD_DIR
        << "/test/guests/misbehave.elf\nmax_instances: 1\n";
  }
};

// Descriptors of this process, closed at the end.
struct Sockets {
  std::vector<int> fds;
  ~Sockets() {
    for (int fd : fds) ::close(fd);
  }
};

// A TCP connection from the loopback address `source` to 127.0.0.1:port; non-blocking ones are
// left to complete in the background (loopback: at once, while the daemon's backlog has room).
int connect_from(const std::string& source, int port, bool blocking) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (blocking ? 0 : SOCK_NONBLOCK), 0);
  REQUIRE(fd >= 0);
  sockaddr_in from{}, to{};
  from.sin_family = to.sin_family = AF_INET;
  REQUIRE(inet_pton(AF_INET, source.c_str(), &from.sin_addr) == 1);
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) ==
          0);  // Safe: sockaddr_in as sockaddr.
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const int rc =
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);  // Safe: sockaddr_in as sockaddr.
  REQUIRE((rc == 0 || (!blocking && errno == EINPROGRESS)));
  return fd;
}

// Sends one request on a blocking connection and reads its whole answer (Content-Length framed).
std::string roundtrip(int fd, const std::string& request) {
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size()))
    return "";
  std::string got;
  char buf[4096];
  for (;;) {
    const auto end = got.find("\r\n\r\n");
    if (end != std::string::npos) {
      std::smatch m;
      const std::string head = got.substr(0, end);
      std::size_t length = 0;
      if (std::regex_search(head, m, std::regex("Content-Length: ([0-9]+)", std::regex::icase)))
        length = std::stoul(m[1]);
      if (got.size() >= end + 4 + length) return got.substr(0, end + 4 + length);
    }
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return got;
    got.append(buf, static_cast<std::size_t>(n));
  }
}

std::string post(const std::string& function, const std::string& body) {
  return "POST /function/" + function +
         " HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
         body;
}
std::string post_echo(const std::string& body) { return post("echo", body); }

// One series of the daemon's /metrics, named with its labels as the text has them; 0 when absent.
double metric(const std::string& metrics, const std::string& series) {
  const auto at = metrics.find("\n" + series + " ");
  return at == std::string::npos ? 0 : std::stod(metrics.substr(at + series.size() + 2));
}

// The sum of a family's series in the daemon's /metrics (every label).
double metric_sum(const std::string& metrics, const std::string& name) {
  double sum = 0;
  std::regex line("(^|\\n)" + name + "(\\{[^}]*\\})? ([0-9.e+]+)");
  for (auto it = std::sregex_iterator(metrics.begin(), metrics.end(), line);
       it != std::sregex_iterator(); ++it)
    sum += std::stod((*it)[3]);
  return sum;
}

std::size_t open_files_of(pid_t pid) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
    ++n;
  return n;
}

int port_of(const Daemon& d) {
  const auto url = d.url("");
  return std::stoi(url.substr(url.rfind(':') + 1));
}

// Waits (bounded) until pred(metrics, n) holds for the daemon's /metrics, n being how many
// connections these requests for it have made so far. "" once it holds, else the last metrics.
template <class Pred>
std::string metrics_until(const Daemon& d, Pred pred) {
  std::string m;
  for (int i = 1; i <= 300; ++i) {
    m = curl(d.url("/metrics"));
    if (pred(m, i)) return "";
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return m;
}

}  // namespace

TEST_CASE("5000 idle connections leave the daemon serving a new client below its open-file limit") {
  need_open_files(kIdle + 512);
  Functions fn;
  Daemon d("--functions-dir " + fn.dir.str(), "ulimit -n " + std::to_string(kDaemonFiles) + ";");
  const int port = port_of(d);
  CHECK(d.wait_log("limits: 1536 connections at most"));  // derived: 2048 less the 512 reserved

  // From 50 addresses, 100 each: the total limit and the descriptors' reserve are what they meet.
  Sockets idle;
  for (int i = 0; i < kIdle; ++i)
    idle.fds.push_back(connect_from("127.0.1." + std::to_string(1 + i / 100), port, false));
  // Every one accepted (besides those asking for /metrics): those past the limit took the place of
  // older idle ones.
  CHECK("" == metrics_until(d, [](const std::string& m, int polls) {
          return metric(m, "unifn_http_connections_accepted_total") >= kIdle + polls;
        }));

  const int client = connect_from("127.0.0.1", port, true);
  idle.fds.push_back(client);
  const auto answer = roundtrip(client, post_echo("still serving"));
  INFO(answer);
  CHECK_THAT(answer, Catch::StartsWith("HTTP/1.1 200") && Catch::EndsWith("\r\n\r\nstill serving"));
  CHECK_THAT(roundtrip(client, post_echo("and again")),
             Catch::EndsWith("\r\n\r\nand again"));  // kept alive
  // A crashed instance is still replaced: the descriptors it needs were kept.
  CHECK_THAT(roundtrip(client, post("misbehave", "null")), Catch::StartsWith("HTTP/1.1 502"));
  CHECK_THAT(roundtrip(client, post("misbehave", "fine")),
             Catch::StartsWith("HTTP/1.1 200") && Catch::EndsWith("ok"));

  const auto files = open_files_of(d.pid());
  INFO("the daemon holds " << files << " descriptors");
  CHECK(files < kDaemonFiles - 256);  // the reserve is left, give or take the connection being shed
  const auto metrics = curl(d.url("/metrics"));
  CHECK(metric_sum(metrics, "unifn_http_connections") <= 1536);
  CHECK(metric_sum(metrics, "unifn_http_connections_refused_total") ==
        0);  // every newcomer found an idle one
  CHECK(d.log().find("accept failed") == std::string::npos);
  CHECK(d.log().find("open descriptors reached the reserve") != std::string::npos);
}

TEST_CASE("one address holding thousands of idle connections cannot lock out another") {
  need_open_files(3500);
  Functions fn;
  Daemon d("--functions-dir " + fn.dir.str(), "ulimit -n 4096;");
  const int port = port_of(d);
  CHECK(d.wait_log("384 per client address"));  // derived: 3072 connections / 8

  Sockets greedy, other;
  for (int i = 0; i < 2000; ++i) greedy.fds.push_back(connect_from("127.0.0.1", port, false));
  CHECK("" == metrics_until(d, [](const std::string& m, int polls) {
          return metric(m, "unifn_http_connections_accepted_total") >= 2000 + polls;
        }));
  // The other client gets in, is served, and keeps its kept-alive connections...
  for (int i = 0; i < 10; ++i) other.fds.push_back(connect_from("127.0.0.2", port, true));
  for (int fd : other.fds)
    CHECK_THAT(roundtrip(fd, post_echo("mine")), Catch::StartsWith("HTTP/1.1 200"));
  // ...while the first opens another thousand, each in place of one of its own.
  const auto before = metric(curl(d.url("/metrics")), "unifn_http_connections_accepted_total");
  for (int i = 0; i < 1000; ++i) greedy.fds.push_back(connect_from("127.0.0.1", port, false));
  CHECK("" == metrics_until(d, [before](const std::string& m, int polls) {
          return metric(m, "unifn_http_connections_accepted_total") >= before + 1000 + polls;
        }));
  for (int fd : other.fds)
    CHECK_THAT(roundtrip(fd, post_echo("still mine")), Catch::EndsWith("\r\n\r\nstill mine"));
  const auto metrics = curl(d.url("/metrics"));
  CHECK(
      metric(metrics, "unifn_http_connections_shed_total{limit=\"max_connections_per_client\"}") >=
      3000 - 384);
  CHECK(metric_sum(metrics, "unifn_http_connections_refused_total") == 0);
}
