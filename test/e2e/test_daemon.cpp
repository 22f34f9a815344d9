// The real daemon on a free loopback port, driven with curl.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <regex>
#include <thread>

#include "test/e2e/daemon_fixture.h"

using unifn::test::sh;

using namespace unifn::test;

TEST_CASE("the daemon serves the examples over HTTP with the invocation headers") {
  Daemon d;
  auto r = curl("-i -X POST --data-binary hi " + d.url("/function/echo"));
  CHECK_THAT(r, Catch::StartsWith("HTTP/1.1 200"));
  CHECK_THAT(r, Catch::Contains("X-Call-Id: ") && Catch::Contains("X-Duration-Seconds: ") &&
                    Catch::Contains("X-Unifn-Start: "));
  CHECK_THAT(r, Catch::EndsWith("\r\n\r\nhi"));
  CHECK(curl("-X POST --data-binary unifn " + d.url("/function/hello")) == "Hello, unifn!\n");
  for (int i = 0; i < 3; ++i) CHECK(curl("-X POST " + d.url("/function/counter")) == "1\n");
  CHECK(curl("-X POST " + d.url("/function/random")) !=
        curl("-X POST " + d.url("/function/random")));
}

TEST_CASE("the daemon answers errors as JSON with honest codes") {
  Daemon d;
  CHECK(curl("-o /dev/null -w '%{http_code}' -X POST " + d.url("/function/nope")) == "404");
  CHECK(curl("-X POST " + d.url("/function/nope")) == "{\"error\":\"no function named 'nope'\"}\n");
  CHECK(curl("-o /dev/null -w '%{http_code}' " + d.url("/function/echo")) == "405");
  CHECK(curl("-o /dev/null -w '%{http_code}' " + d.url("/nothing")) == "404");
  CHECK(curl(d.url("/healthz")) == "OK\n");
  CHECK_THAT(curl(d.url("/system/functions")), Catch::Contains("\"name\":\"echo\""));
  CHECK_THAT(curl(d.url("/system/function/counter")),
             Catch::Contains("\"unifn.isolation\":\"per-request\""));
}

TEST_CASE("a body of exactly the limit is served and one byte more is refused with 413") {
  std::string cfg = "/tmp/unifn-e2e-limit-" + std::to_string(getpid()) + ".yaml";
  std::ofstream(cfg) << "listen: 127.0.0.1:0\nfunctions_dirs: [" << UNIFN_BUILD_DIR
                     << "/functions.d]\n"
                     << "limits: {max_body_bytes: 1000}\n";
  Daemon d("--config " + cfg);
  sh("head -c 1000 /dev/zero > /tmp/unifn-1000 && head -c 1001 /dev/zero > /tmp/unifn-1001");
  CHECK(curl("-o /dev/null -w '%{http_code}' -X POST --data-binary @/tmp/unifn-1000 " +
             d.url("/function/echo")) == "200");
  CHECK(curl("-o /dev/null -w '%{http_code}' -X POST --data-binary @/tmp/unifn-1001 " +
             d.url("/function/echo")) == "413");
  CHECK(curl("-X POST --data-binary ok " + d.url("/function/echo")) == "ok");
  unlink(cfg.c_str());
}

TEST_CASE("SIGTERM stops the daemon cleanly") {
  Daemon d;
  CHECK(curl("-X POST --data-binary x " + d.url("/function/echo")) == "x");
  CHECK(d.stop() == 0);
}

TEST_CASE("SIGTERM answers the calls in flight before it closes their connections") {
  TempDir fns;
  std::ofstream(fns.str() + "/m.yaml") << "name: misbehave\nimage: " << UNIFN_BUILD_DIR
                                       << "/test/guests/misbehave.elf\ntimeout_ms: 1000\n";
  Daemon d("--functions-dir " + fns.str());
  // Its one warm instance idle, then busy with the call: SIGTERM lands while the guest spins until
  // its timeout, however slowly a loaded machine starts curl.
  auto idle_instances_are = [&](const char* n) {
    for (int i = 0; i < 400; ++i) {
      if (curl(d.url("/system/function/misbehave"))
              .find(std::string("\"availableReplicas\":") + n) != std::string::npos)
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return false;
  };
  REQUIRE(idle_instances_are("1"));
  auto running = std::async(std::launch::async, [&] {
    return curl("-o /dev/null -w '%{http_code}' -X POST --data-binary loop " +
                d.url("/function/misbehave"));
  });
  REQUIRE(idle_instances_are("0"));
  d.signal(SIGTERM);
  CHECK(running.get() == "504");  // answered within the grace (10 s), not cut off
  REQUIRE(d.stop() == 0);
  CHECK_THAT(d.log(), Catch::Contains("unifnd: stopped"));
}

TEST_CASE(
    "a SIGTERM or SIGHUP that lands on a thread a library started before main is still the "
    "daemon's") {
  // OpenBLAS starts threads from its constructor, with no signal blocked; the kernel may hand a
  // process-directed signal to one of them. Sent to each such thread directly, it must neither
  // kill the daemon nor be lost.
  TempDir fns;
  std::ofstream(fns.str() + "/echo.yaml")
      << "name: echo\nimage: " << UNIFN_FUNCTIONS_DIR << "/echo.elf\n";
  Daemon d("--functions-dir " + fns.str());
  std::vector<pid_t> threads;
  for (const auto& t :
       std::filesystem::directory_iterator("/proc/" + std::to_string(d.pid()) + "/task")) {
    std::ifstream status(t.path() / "status");
    std::string line;
    while (std::getline(status, line))
      if (line.rfind("SigBlk:", 0) == 0 &&
          (std::stoull(line.substr(7), nullptr, 16) & (1ull << (SIGTERM - 1))) == 0)
        threads.push_back(static_cast<pid_t>(std::stoi(t.path().filename().string())));
  }
  REQUIRE(!threads.empty());            // the main thread waits with them unblocked, at least
  const pid_t target = threads.back();  // a library's thread when there is one
  auto mark = d.log().size();
  REQUIRE(syscall(SYS_tgkill, d.pid(), target, SIGHUP) == 0);
  REQUIRE(d.wait_log("reloaded", mark));
  CHECK(curl("-X POST --data-binary still " + d.url("/function/echo")) == "still");
  REQUIRE(syscall(SYS_tgkill, d.pid(), target, SIGTERM) == 0);
  REQUIRE(d.stop() == 0);
  CHECK_THAT(d.log(),
             Catch::Contains("SIGTERM received, draining") && Catch::Contains("unifnd: stopped"));
}
