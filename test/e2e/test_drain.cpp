// SIGTERM behind a load balancer: /healthz answers 503 at once, every connection the daemon
// accepted or holds in its accept queue is answered, and only then is a new one refused.
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "test/e2e/daemon_fixture.h"
#include "test/e2e/loopback_client.h"

using namespace unifn::test;
using namespace std::chrono_literals;

TEST_CASE(
    "SIGTERM: /healthz 503 at once, calls in flight and connections in the accept queue all "
    "answered, then connection refused") {
  Daemon d;
  const int port = d.port();
  REQUIRE(curl("-X POST --data-binary warm " + d.url("/function/echo")) == "warm");
  // A request under way (its header not yet complete) when SIGTERM comes: the connection is held
  // and served, and its /healthz says the node is going.
  const int probe = connect_loopback(port);
  REQUIRE(probe >= 0);
  REQUIRE(send_all(probe, "GET /healthz HTTP/1.1\r\nHost: t\r\n"));
  // Stopped, the daemon accepts nothing, while the kernel completes the handshakes: these
  // connections, with their calls sent, wait in the accept queue when SIGTERM arrives.
  REQUIRE(kill(d.pid(), SIGSTOP) == 0);
  constexpr int kQueued = 40;
  std::vector<int> queued;
  for (int i = 0; i < kQueued; ++i) {
    const int fd = connect_loopback(port);
    REQUIRE(fd >= 0);
    REQUIRE(send_all(fd, post_and_close("/function/echo", "queued-" + std::to_string(i))));
    queued.push_back(fd);
  }
  REQUIRE(kill(d.pid(), SIGTERM) == 0);
  REQUIRE(kill(d.pid(), SIGCONT) == 0);
  REQUIRE(d.wait_log("SIGTERM received, draining"));
  std::this_thread::sleep_for(200ms);  // the daemon is surely stopping by now
  REQUIRE(send_all(probe, "\r\n"));
  const auto health = read_to_end(probe);
  CHECK_THAT(health, Catch::StartsWith("HTTP/1.1 503") && Catch::EndsWith("shutting down\n") &&
                         Catch::Contains("Connection: close"));
  int answered = 0;
  for (int i = 0; i < kQueued; ++i) {
    const auto got = read_to_end(queued[i]);
    INFO("queued call " << i << ": " << got);
    CHECK_THAT(got, Catch::StartsWith("HTTP/1.1 200") &&
                        Catch::EndsWith("\r\n\r\nqueued-" + std::to_string(i)));
    answered += got.starts_with("HTTP/1.1 200");
  }
  CHECK(answered == kQueued);
  // Then the port is closed: a balancer's next connection is refused, which it safely retries on
  // another node.
  bool refused = false;
  for (int i = 0; i < 100 && !refused; ++i) {
    const int fd = connect_loopback(port, 2);
    refused = fd < 0;
    if (fd >= 0) ::close(fd);
    if (!refused) std::this_thread::sleep_for(50ms);
  }
  CHECK(refused);
  REQUIRE(d.stop() == 0);
  CHECK_THAT(d.log(), Catch::Contains("unifnd: stopped"));
}
