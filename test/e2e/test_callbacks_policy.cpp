// The real daemon against SSRF through X-Callback-Url and against state directories that are not
// its own (issue 10, items 9 and 11): the default allow list, one that lets loopback in, a reload
// that takes it back, and unifnd, unifnd run and check-config refusing a directory with a sentence.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "test/e2e/daemon_fixture.h"

using namespace unifn::test;

namespace {

const std::string kUnifnd = std::string(UNIFN_BUILD_DIR) + "/unifnd";

// An HTTP receiver on 127.0.0.1 that answers 200 to every request and counts them.
class Receiver {
 public:
  Receiver() {
    srv_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(srv_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) ==
            0);  // Safe: sockaddr_in as sockaddr.
    socklen_t len = sizeof addr;
    getsockname(srv_, reinterpret_cast<sockaddr*>(&addr), &len);  // Safe: as above.
    port_ = std::to_string(ntohs(addr.sin_port));
    listen(srv_, 8);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{srv_, POLLIN, 0};
        if (poll(&p, 1, 20) != 1) continue;
        int c = accept(srv_, nullptr, nullptr);
        if (c < 0) continue;
        timeval tv{2, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        std::string got;
        char buf[4096];
        ssize_t n;
        while ((n = read(c, buf, sizeof buf)) > 0) {
          got.append(buf, static_cast<std::size_t>(n));
          auto end = got.find("\r\n\r\n");
          if (end == std::string::npos) continue;
          auto cl = got.find("Content-Length: ");
          if (cl == std::string::npos || cl > end ||
              got.size() >= end + 4 + std::stoul(got.substr(cl + 16)))
            break;
        }
        std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        (void)!write(c, ok.data(), ok.size());
        ::close(c);
        ++requests_;
      }
    });
  }
  ~Receiver() {
    stop_ = true;
    thread_.join();
    ::close(srv_);
  }
  std::string url(const std::string& host) const {
    return "http://" + host + ":" + port_ + "/hook";
  }
  int requests() const { return requests_.load(); }

 private:
  int srv_ = -1;
  std::string port_;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

// Submits an async call to echo with a callback URL; "<code> <body>".
std::string submit(const Daemon& d, const std::string& callback, const std::string& id) {
  return curl("-w ' %{http_code}' -X POST -H 'X-Call-Id: " + id + "' -H 'X-Callback-Url: " +
              callback + "' --data-binary x " + d.url("/async-function/echo"));
}

// GET /v1/calls/{id} until it shows what, or a few seconds passed; the last answer.
std::string poll_call(const Daemon& d, const std::string& id, const std::string& what) {
  std::string status;
  for (int i = 0; i < 200 && status.find(what) == std::string::npos; ++i) {
    status = curl(d.url("/v1/calls/" + id));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status;
}

std::string config_file(const TempDir& dir, const std::string& extra) {
  const auto path = dir.str() + "/unifn.yaml";
  std::ofstream(path) << "listen: 127.0.0.1:0\nfunctions_dirs: [" << UNIFN_BUILD_DIR
                      << "/functions.d]\n"
                      << extra;
  return path;
}

}  // namespace

TEST_CASE(
    "by default callbacks reach no loopback, link-local or private address: 400 for a literal, "
    "\"refused\" in the call's status for a name") {
  Receiver rx;
  Daemon d;  // no callbacks key anywhere: allow: [public]
  auto r = submit(d, rx.url("127.0.0.1"), "lit-loop");
  CHECK_THAT(
      r, Catch::EndsWith(" 400") && Catch::Contains("is refused: 127.0.0.1 is a loopback address, "
                                                    "which callbacks.allow does not include"));
  r = submit(d, "http://169.254.169.254/latest/meta-data/iam/", "lit-meta");
  CHECK_THAT(r,
             Catch::EndsWith(" 400") && Catch::Contains("169.254.169.254 is a link-local address"));
  CHECK_THAT(submit(d, "http://[::ffff:127.0.0.1]:9/", "lit-mapped"), Catch::EndsWith(" 400"));
  CHECK_THAT(submit(d, "http://[::1]:9/", "lit-v6"), Catch::EndsWith(" 400"));
  CHECK_THAT(submit(d, "http://10.1.2.3/", "lit-private"), Catch::EndsWith(" 400"));
  CHECK_THAT(submit(d, "http://2130706433:9/", "lit-decimal"),
             Catch::EndsWith(" 400"));  // 127.0.0.1 as getaddrinfo reads it
  CHECK(curl("-o /dev/null -w '%{http_code}' " + d.url("/v1/calls/lit-loop")) ==
        "404");  // never accepted

  // A name is accepted, resolved (localhost: /etc/hosts), found to be loopback only, and refused.
  CHECK_THAT(submit(d, rx.url("localhost"), "by-name"), Catch::EndsWith(" 202"));
  auto status = poll_call(d, "by-name", "\"callback\":\"refused");
  CHECK_THAT(
      status,
      Catch::Contains("\"state\":\"done\"") && Catch::Contains("\"status\":200") &&
          Catch::Contains(
              "\"callback\":\"refused: localhost resolves only to refused addresses: ") &&
          Catch::Contains("is a loopback address, which callbacks.allow does not include\""));
  CHECK(d.wait_log("callback for call by-name to " + rx.url("localhost") + " refused: "));
  CHECK(rx.requests() == 0);
}

TEST_CASE(
    "a daemon file that allows loopback gets its callbacks, by address or by name, and a reload "
    "that "
    "drops it refuses them again") {
  Receiver rx;
  TempDir dir;
  const auto cfg = config_file(
      dir, "callbacks:\n  allow: [public, 127.0.0.0/8, '::1']\n  resolve_timeout_ms: 1000\n");
  Daemon d("--config " + cfg);
  CHECK_THAT(submit(d, rx.url("127.0.0.1"), "ok-lit"), Catch::EndsWith(" 202"));
  CHECK_THAT(poll_call(d, "ok-lit", "\"callback\":\"delivered\""),
             Catch::Contains("\"callback\":\"delivered\""));
  CHECK_THAT(submit(d, rx.url("localhost"), "ok-name"), Catch::EndsWith(" 202"));
  CHECK_THAT(poll_call(d, "ok-name", "\"callback\":\"delivered\""),
             Catch::Contains("\"callback\":\"delivered\""));
  CHECK(rx.requests() == 2);

  config_file(dir, "");  // back to the default allow list
  const auto skip = d.log().size();
  d.signal(SIGHUP);
  REQUIRE(d.wait_log("callbacks.allow is now [public]", skip));
  CHECK_THAT(submit(d, rx.url("127.0.0.1"), "after-reload"), Catch::EndsWith(" 400"));
  CHECK_THAT(submit(d, rx.url("localhost"), "after-reload-name"), Catch::EndsWith(" 202"));
  CHECK_THAT(poll_call(d, "after-reload-name", "\"callback\":\"refused"),
             Catch::Contains("\"callback\":\"refused: "));
  CHECK(rx.requests() == 2);
}

TEST_CASE(
    "a state directory that is not ours alone stops unifnd, unifnd run and check-config with a "
    "sentence") {
  namespace fs = std::filesystem;
  TempDir base;  // mkdtemp: ours, 0700, under /tmp
  const auto open = base.str() + "/open";
  fs::create_directories(open);
  fs::permissions(open, fs::perms::all);
  const std::string why =
      "refusing the state directory " + open + ": its mode 0777 lets group and others write to it";

  auto daemon = sh("timeout 20 " + kUnifnd + " --listen 127.0.0.1:0 --state-dir " + open +
                   platform_flag("") + " 2>&1");
  CHECK(daemon.status == 1);
  CHECK_THAT(daemon.out, Catch::Contains("unifnd: " + why));
  CHECK_THAT(daemon.out, !Catch::Contains("listening on"));
  auto run = sh("timeout 20 " + kUnifnd + " run " + UNIFN_FUNCTIONS_DIR +
                "/hello.elf --state-dir " + open + platform_flag("") + " 2>&1");
  CHECK(run.status == 1);
  CHECK_THAT(run.out, Catch::Contains("unifnd run: " + why));
  auto check = sh(kUnifnd + " check-config --state-dir " + open + " --functions-dir " + base.str() +
                  "/none 2>&1");
  CHECK(check.status == 1);
  CHECK_THAT(check.out, Catch::Contains("state_dir: " + why));

  // An explicit one under /tmp that is ours: created 0700, and it serves.
  const auto mine = base.str() + "/mine";
  auto ok = sh("timeout 60 " + kUnifnd + " run " + UNIFN_FUNCTIONS_DIR + "/hello.elf --state-dir " +
               mine + platform_flag("") + " 2>&1");
  CHECK(ok.status == 0);
  CHECK_THAT(ok.out, Catch::Contains("booted cold, snapshot saved"));
  struct stat st {};
  REQUIRE(::stat(mine.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);

  if (::geteuid() != 0) {
    WARN("not root: a state directory another user owns needs chown, skipped");
    return;
  }
  const auto theirs = base.str() + "/theirs";
  fs::create_directories(theirs);
  fs::permissions(theirs, fs::perms::owner_all);
  REQUIRE(::chown(theirs.c_str(), 65534, 65534) == 0);
  daemon = sh("timeout 20 " + kUnifnd + " --listen 127.0.0.1:0 --state-dir " + theirs +
              platform_flag("") + " 2>&1");
  CHECK(daemon.status == 1);
  CHECK_THAT(daemon.out, Catch::Contains("unifnd: refusing the state directory " + theirs +
                                         ": it is owned by uid 65534"));
}
