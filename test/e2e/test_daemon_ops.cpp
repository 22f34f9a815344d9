// The daemon in operation: async calls and callbacks, metrics, reloads, load, systemd's notify
// protocol.
#include <catch2/catch.hpp>

#include <signal.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "test/e2e/daemon_fixture.h"

using namespace unifn::test;

TEST_CASE("async calls answer 202, can be polled, and POST their result to a callback") {
  // The receiver listens on loopback, which callbacks may reach only when the daemon file says so.
  TempDir dir;
  std::ofstream(dir.str() + "/unifn.yaml")
      << "listen: 127.0.0.1:0\nfunctions_dirs: [" << UNIFN_BUILD_DIR
      << "/functions.d]\ncallbacks: {allow: [public, 127.0.0.0/8]}\n";
  Daemon d("--config " + dir.str() + "/unifn.yaml");
  CHECK(curl("-o /dev/null -w '%{http_code}' -X POST " + d.url("/async-function/nope")) == "404");
  CHECK(curl("-o /dev/null -w '%{http_code}' -X POST -H 'X-Callback-Url: ftp://x/' " +
             d.url("/async-function/echo")) == "400");
  auto head = curl("-i -X POST --data-binary 'async hello' " + d.url("/async-function/echo"));
  CHECK_THAT(head, Catch::StartsWith("HTTP/1.1 202"));
  std::smatch m;
  REQUIRE(std::regex_search(head, m, std::regex("X-Call-Id: ([0-9a-f]+)")));
  std::string id = m[1], status;
  for (int i = 0; i < 100 && status.find("\"done\"") == std::string::npos; ++i) {
    status = curl(d.url("/v1/calls/" + id));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK_THAT(status, Catch::Contains("\"state\":\"done\"") && Catch::Contains("\"status\":200") &&
                         Catch::Contains("\"body_base64\":\"YXN5bmMgaGVsbG8=\""));
  CHECK(curl(d.url("/v1/calls/" + id + "?result=raw")) == "async hello");
  CHECK(curl("-o /dev/null -w '%{http_code}' " + d.url("/v1/calls/ffff")) == "404");

  // A callback receiver: one HTTP request read with nc-like code in a thread.
  int srv = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(srv, reinterpret_cast<sockaddr*>(&addr), sizeof addr) ==
          0);  // Safe: sockaddr_in as sockaddr.
  socklen_t len = sizeof addr;
  getsockname(srv, reinterpret_cast<sockaddr*>(&addr), &len);  // Safe: as above.
  listen(srv, 1);
  std::string received;
  std::thread receiver([&] {
    int c = accept(srv, nullptr, nullptr);
    char buf[4096];
    ssize_t n;
    timeval tv{5, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while ((n = read(c, buf, sizeof buf)) > 0) {
      received.append(buf, static_cast<std::size_t>(n));
      if (received.find("callback body") != std::string::npos) break;
    }
    std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    (void)!write(c, ok.data(), ok.size());
    close(c);
  });
  auto url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/hook";
  curl("-X POST -H 'X-Callback-Url: " + url + "' --data-binary 'callback body' " +
       d.url("/async-function/echo"));
  receiver.join();
  close(srv);
  CHECK_THAT(received, Catch::StartsWith("POST /hook HTTP/1.1") && Catch::Contains("X-Call-Id: ") &&
                           Catch::Contains("X-Function-Status: 200") &&
                           Catch::Contains("X-Duration-Seconds: ") &&
                           Catch::EndsWith("callback body"));
}

TEST_CASE("/metrics shows invocations, durations, starts, instances and snapshot builds") {
  Daemon d;
  curl("-X POST --data-binary x " + d.url("/function/echo"));
  curl("-X POST " + d.url("/function/nope"));
  auto text = curl(d.url("/metrics"));
  CHECK_THAT(text, Catch::Contains("unifn_invocations_total{code=\"200\",function=\"echo\"} 1"));
  CHECK_THAT(text, Catch::Contains("unifn_invocation_duration_seconds_count{function=\"echo\"} 1"));
  CHECK_THAT(text, Catch::Contains("unifn_starts_total{function=\"echo\",kind=\"restored\"} 1"));
  CHECK_THAT(text, Catch::Contains("unifn_instances{function=\"echo\",state=\"idle\"}"));
  CHECK_THAT(text, Catch::Contains("unifn_queue_depth{function=\"echo\"} 0"));
  CHECK_THAT(text, Catch::Contains(
                       "unifn_snapshot_builds_total{function=\"echo\",source=\"cold_boot\"} 1"));
}

TEST_CASE(
    "SIGHUP adds, changes and removes functions, a broken set is refused and the old one serves") {
  TempDir fns;
  auto put = [&](const std::string& file, const std::string& fn, const std::string& image) {
    std::ofstream(fns.str() + "/" + file) << "name: " << fn << "\nimage: " << UNIFN_FUNCTIONS_DIR
                                          << "/" << image << ".elf\nmax_instances: 2\n";
  };
  put("10-echo.yaml", "echo", "echo");
  Daemon d("--functions-dir " + fns.str());
  CHECK(curl("-X POST --data-binary a " + d.url("/function/echo")) == "a");
  CHECK(curl("-o /dev/null -w '%{http_code}' -X POST " + d.url("/function/hello")) == "404");

  // Calls keep flowing while the set changes under them.
  auto flood = std::async(std::launch::async, [&] {
    return sh("for i in $(seq 60); do curl -s -o /dev/null -w '%{http_code}\\n' -X POST "
              "--data-binary x " +
              d.url("/function/echo") + "; done")
        .out;
  });
  put("20-hello.yaml", "hello", "hello");
  put("10-echo.yaml", "echo", "counter");  // same name, another image: a changed function
  auto mark = d.log().size();
  d.signal(SIGHUP);
  REQUIRE(d.wait_log("reloaded", mark));
  CHECK(curl("-X POST --data-binary you " + d.url("/function/hello")) == "Hello, you!\n");
  CHECK(curl("-X POST " + d.url("/function/echo")) == "1\n");
  auto codes = flood.get();
  CHECK(codes.find("200") != std::string::npos);
  CHECK(codes.find_first_not_of("200\n") ==
        std::string::npos);  // nothing but 200s during the reload

  std::ofstream(fns.str() + "/30-broken.yaml") << "name: broken\nimage: /nonexistent.elf\n";
  std::remove((fns.str() + "/20-hello.yaml").c_str());
  mark = d.log().size();
  d.signal(SIGHUP);
  REQUIRE(d.wait_log("reload refused", mark));
  CHECK_THAT(d.log().substr(mark), Catch::Contains("/nonexistent.elf"));
  CHECK(curl("-X POST --data-binary still " + d.url("/function/hello")) ==
        "Hello, still!\n");  // old set serves

  std::remove((fns.str() + "/30-broken.yaml").c_str());
  mark = d.log().size();
  d.signal(SIGHUP);
  REQUIRE(d.wait_log("reloaded", mark));
  CHECK(curl("-o /dev/null -w '%{http_code}' -X POST " + d.url("/function/hello")) ==
        "404");  // removed
}

TEST_CASE(
    "a reload that changes a function's image removes its old snapshot from the state directory") {
  TempDir fns;
  auto put = [&](const std::string& image) {
    std::ofstream(fns.str() + "/10-fn.yaml")
        << "name: fn\nimage: " << UNIFN_FUNCTIONS_DIR << "/" << image << ".elf\n";
  };
  auto snapshots = [](const std::string& dir) {
    std::set<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      names.insert(e.path().filename().string());
    return names;
  };
  put("echo");
  Daemon d("--functions-dir " + fns.str());
  const auto before = snapshots(d.state_dir());
  CHECK(before.size() == 2);  // KEY.ram and KEY.state
  put("counter");
  auto mark = d.log().size();
  d.signal(SIGHUP);
  REQUIRE(d.wait_log("reloaded", mark));
  CHECK_THAT(d.log().substr(mark), Catch::Contains("removed 2 stale snapshot files"));
  const auto after = snapshots(d.state_dir());
  CHECK(after.size() == 2);
  for (const auto& name : before) CHECK(after.count(name) == 0);
  CHECK(curl("-X POST " + d.url("/function/fn")) == "1\n");
}

TEST_CASE("a malformed drop-in at start-up is reported and skipped, the others serve") {
  TempDir fns;
  std::ofstream(fns.str() + "/10-echo.yaml")
      << "name: echo\nimage: " << UNIFN_FUNCTIONS_DIR << "/echo.elf\n";
  std::ofstream(fns.str() + "/20-bad.yaml") << "name: bad\nimage: x\nmemory_mb: lots\n";
  Daemon d("--functions-dir " + fns.str());
  CHECK(curl("-X POST --data-binary ok " + d.url("/function/echo")) == "ok");
  CHECK_THAT(d.log(), Catch::Contains("20-bad.yaml:3: memory_mb: 'lots' is not a whole number"));
}

TEST_CASE("200 concurrent clients against a pool of 2: only 200s and 429s, none lost") {
  TempDir fns;
  std::ofstream(fns.str() + "/echo.yaml") << "name: echo\nimage: " << UNIFN_FUNCTIONS_DIR
                                          << "/echo.elf\nmin_warm: 2\nmax_instances: 2\n";
  std::ofstream(fns.str() + "/unifn.yaml")
      << "listen: 127.0.0.1:0\nfunctions_dirs: [" << fns.str() << "]\n"
      << "limits: {max_queue: 8}\n";
  Daemon d("--config " + fns.str() + "/unifn.yaml");
  auto out = sh("seq 200 | xargs -P 200 -I{} curl -s -o /dev/null -w '%{http_code}\\n' --max-time "
                "20 -X POST "
                "--data-binary {} " +
                d.url("/function/echo"))
                 .out;
  std::map<std::string, int> codes;
  std::istringstream in(out);
  for (std::string c; std::getline(in, c);) ++codes[c];
  int total = 0;
  for (auto& [c, n] : codes) total += n;
  CHECK(total == 200);
  CHECK(codes["200"] + codes["429"] == 200);
  CHECK(codes["200"] >= 2);
  CHECK(curl("-X POST --data-binary after " + d.url("/function/echo")) == "after");
}

TEST_CASE("systemd's notify protocol: READY, WATCHDOG, RELOADING, STOPPING on a real socket") {
  TempDir dir;
  std::string path = dir.str() + "/notify.sock";
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  REQUIRE(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) ==
          0);  // Safe: sockaddr_un as sockaddr.
  timeval tv{0, 200000};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string got;
  auto drain = [&](const std::string& until) {
    char buf[1024];
    for (int i = 0; i < 100 && got.find(until) == std::string::npos; ++i) {
      ssize_t n = recv(s, buf, sizeof buf, 0);
      if (n > 0) got.append(buf, static_cast<std::size_t>(n)).push_back('\n');
    }
    return got.find(until) != std::string::npos;
  };
  {
    Daemon d("", "NOTIFY_SOCKET=" + path + " WATCHDOG_USEC=1000000");
    CHECK(drain("READY=1"));
    CHECK_THAT(got, Catch::Contains("STATUS=serving"));
    CHECK(drain("WATCHDOG=1"));
    d.signal(SIGHUP);
    CHECK(drain("RELOADING=1"));
    CHECK_THAT(got, Catch::Contains("MONOTONIC_USEC="));
    got.clear();
    CHECK(drain("READY=1"));  // the reload is over before the stop begins
    // Read while it stops: a full datagram queue (WATCHDOG=1 piling up) would drop STOPPING=1.
    d.signal(SIGTERM);
    CHECK(drain("STOPPING=1"));
    CHECK(d.stop() == 0);
  }
  close(s);
}

TEST_CASE(
    "a client that hangs up while its call runs has the guest stopped, the next call is served at "
    "once") {
  TempDir fns;
  std::ofstream(fns.str() + "/m.yaml")
      << "name: misbehave\nimage: " << UNIFN_BUILD_DIR
      << "/test/guests/misbehave.elf\nmin_warm: 1\nmax_instances: 1\ntimeout_ms: 60000\n";
  Daemon d("--functions-dir " + fns.str());
  // The client gives up after 0.5 s on a guest that would spin for a minute.
  CHECK(curl("--max-time 0.5 -o /dev/null -w '%{http_code}' -X POST --data-binary loop " +
             d.url("/function/misbehave")) == "000");
  // curl's own limit (10 s) is far below the function's: only a stopped guest lets this through.
  CHECK(curl("-X POST --data-binary fine " + d.url("/function/misbehave")) == "ok");
  CHECK_THAT(d.log(), !Catch::Contains("did not answer within"));
}

TEST_CASE("a client that hangs up while its call waits frees its place, the daemon keeps serving") {
  TempDir fns;
  std::ofstream(fns.str() + "/m.yaml")
      << "name: misbehave\nimage: " << UNIFN_BUILD_DIR
      << "/test/guests/misbehave.elf\nmin_warm: 1\nmax_instances: 1\ntimeout_ms: 1500\n";
  Daemon d("--functions-dir " + fns.str());
  auto busy = std::async(std::launch::async, [&] {
    return curl("-o /dev/null -w '%{http_code}' -X POST --data-binary loop " +
                d.url("/function/misbehave"));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // Queued behind the loop; the client gives up after 0.3 s.
  CHECK(curl("--max-time 0.3 -o /dev/null -w '%{http_code}' -X POST --data-binary fine " +
             d.url("/function/misbehave")) == "000");
  CHECK(busy.get() == "504");
  CHECK(curl("-X POST --data-binary fine " + d.url("/function/misbehave")) == "ok");
  // The abandoned call never ran: the loop and the last call are the only invocations.
  CHECK_THAT(curl(d.url("/system/function/misbehave")), Catch::Contains("\"invocationCount\":2"));
}
