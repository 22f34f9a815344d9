// A real Server on 127.0.0.1:0 driven by raw sockets and curl: connections, limits, async, stop.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "test/unit/http/fakes.h"
#include "src/http/server.h"

using namespace unifn;
using namespace unifn::test;

namespace {

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string header(const std::string& n) const {
    auto it = headers.find(n);
    return it == headers.end() ? "" : it->second;
  }
};

// A blocking loopback client with a receive timeout, reading whole HTTP/1.1 responses.
class Client {
 public:
  // source: the loopback address it connects from (127.0.0.2 is another client to the server).
  explicit Client(std::uint16_t port, std::chrono::milliseconds timeout = 3000ms,
                  const char* source = nullptr) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (source) {
      sockaddr_in from{};
      from.sin_family = AF_INET;
      REQUIRE(inet_pton(AF_INET, source, &from.sin_addr) == 1);
      REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof from) ==
              0);  // Safe: sockaddr_in as sockaddr.
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) ==
            0);  // Safe: sockaddr_in as sockaddr.
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Client() { close(); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool send(std::string_view s) {
    while (!s.empty()) {
      auto n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      s.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  // One response; nullopt on end of stream or timeout before it was complete.
  std::optional<RawResponse> read() {
    std::size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill()) return std::nullopt;
    RawResponse r;
    std::istringstream head(buf_.substr(0, end));
    std::string line;
    std::getline(head, line);
    if (!(line.starts_with("HTTP/1.1 ") || line.starts_with("HTTP/1.0 ")) || line.size() < 12)
      return std::nullopt;
    r.status = std::stoi(line.substr(9, 3));
    while (std::getline(head, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string k = line.substr(0, colon), v = line.substr(colon + 1);
      for (auto& c : k) c = static_cast<char>(std::tolower(c));
      r.headers[k] = v.substr(
          v.find_first_not_of(' ') == std::string::npos ? v.size() : v.find_first_not_of(' '));
    }
    buf_.erase(0, end + 4);
    if (r.status == 100) return r;
    std::size_t len =
        r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    if (head_) len = 0;
    while (buf_.size() < len)
      if (!fill()) return std::nullopt;
    r.body = buf_.substr(0, len);
    buf_.erase(0, len);
    return r;
  }
  // True when the server closes the connection (end of stream or reset) within the timeout.
  bool closed_by_peer(std::chrono::milliseconds limit = 3000ms) {
    pollfd p{fd_, POLLIN, 0};
    auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      if (poll(&p, 1, 50) == 1) {
        char c[4096];
        auto n = recv(fd_, c, sizeof c, 0);
        if (n <= 0) return true;
      }
    }
    return false;
  }
  void expect_head(bool h) { head_ = h; }

 private:
  bool fill() {
    char c[65536];
    auto n = recv(fd_, c, sizeof c, 0);
    if (n <= 0) return false;
    buf_.append(c, static_cast<std::size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string buf_;
  bool head_ = false;
};

std::string post(const std::string& path, const std::string& body, const std::string& extra = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" + extra + "\r\n" + body;
}
std::string get(const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: t\r\n" + extra + "\r\n";
}

// A Server with the ApiFixture behind it; members die in the right order.
struct ServerFixture : ApiFixture {
  explicit ServerFixture(http::ServerOptions o = options()) : server(o, api) { server.start(); }
  static http::ServerOptions options() {
    http::ServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.max_body_bytes = 1000;
    o.max_header_bytes = 4096;
    o.read_timeout = 2000ms;
    o.idle_timeout = 2000ms;
    o.io_threads = 2;
    return o;
  }
  std::uint16_t port() const { return server.port(); }
  http::Server server;
};

struct Popen {
  std::string out;
  int rc = -1;
};
Popen run(const std::string& cmd) {
  Popen p;
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return p;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) p.out.append(buf, n);
  p.rc = pclose(f);
  return p;
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 3000ms) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

}  // namespace

TEST_CASE("the server binds port 0 and answers on a kept-alive connection") {
  ServerFixture f;
  REQUIRE(f.port() != 0);
  Client c(f.port());
  REQUIRE(c.send(post("/function/echo", "one")));
  auto r1 = c.read();
  REQUIRE(r1);
  CHECK(r1->status == 200);
  CHECK(r1->body == "one");
  CHECK(r1->header("connection") != "close");
  CHECK(r1->header("server") == "unifnd");
  REQUIRE(c.send(post("/function/echo", "two")));
  auto r2 = c.read();
  REQUIRE(r2);
  CHECK(r2->body == "two");
  CHECK(r1->header("x-call-id") != r2->header("x-call-id"));
  CHECK(f.server.connections() == 1);
}

TEST_CASE("pipelined requests are answered in order, a slow one first included") {
  ServerFixture f;
  f.dispatcher.slow_delay = 100ms;
  Client c(f.port());
  REQUIRE(c.send(post("/function/slow", "") + post("/function/echo", "b") + get("/healthz") +
                 post("/function/echo", "d")));
  auto a = c.read(), b = c.read(), h = c.read(), d = c.read();
  REQUIRE((a && b && h && d));
  CHECK(a->body == "slow done");
  CHECK(b->body == "b");
  CHECK(h->body == "OK\n");
  CHECK(d->body == "d");
}

TEST_CASE("HEAD frames correctly on a kept-alive connection") {
  ServerFixture f;
  Client c(f.port());
  c.expect_head(true);
  REQUIRE(c.send("HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto h = c.read();
  REQUIRE(h);
  CHECK(h->status == 200);
  CHECK(h->header("content-length") == "3");
  c.expect_head(false);
  REQUIRE(c.send(get("/healthz")));
  auto g = c.read();
  REQUIRE(g);
  CHECK(g->body == "OK\n");
}

TEST_CASE("a body of exactly the limit is served, one byte more is 413 before the body is sent") {
  ServerFixture f;
  {
    Client c(f.port());
    REQUIRE(c.send(post("/function/echo", std::string(1000, 'x'))));
    auto r = c.read();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body.size() == 1000);
  }
  Client c(f.port());
  // Only the header: the answer must come without the body.
  REQUIRE(c.send("POST /function/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n"));
  auto r = c.read();
  REQUIRE(r);
  CHECK(r->status == 413);
  CHECK(r->header("connection") == "close");
  CHECK(r->header("content-type") == "application/json");
  CHECK(r->body == "{\"error\":\"the request body is larger than the limit of 1000 bytes\"}\n");
  CHECK(c.closed_by_peer());
  CHECK(f.dispatcher.calls().size() == 1);
  CHECK_THAT(f.metrics.serialize(),
             Catch::Contains("unifn_invocations_total{code=\"413\",function=\"echo\"} 1"));
}

TEST_CASE("a chunked body that grows past the limit is 413") {
  ServerFixture f;
  Client c(f.port());
  std::string chunk(600, 'y');
  REQUIRE(c.send(
      "POST /function/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n" +
      chunk + "\r\n258\r\n" + chunk + "\r\n0\r\n\r\n"));
  auto r = c.read();
  REQUIRE(r);
  CHECK(r->status == 413);
}

TEST_CASE("Expect: 100-continue gets 100 Continue, then the answer") {
  ServerFixture f;
  Client c(f.port());
  REQUIRE(
      c.send("POST /function/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: "
             "100-continue\r\n\r\n"));
  auto cont = c.read();
  REQUIRE(cont);
  CHECK(cont->status == 100);
  REQUIRE(c.send("hello"));
  auto r = c.read();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "hello");
}

TEST_CASE("headers over the limit get 431, malformed requests 400") {
  ServerFixture f;
  {
    Client c(f.port());
    REQUIRE(c.send("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(5000, 'h') +
                   "\r\n\r\n"));
    auto r = c.read();
    REQUIRE(r);
    CHECK(r->status == 431);
    CHECK(c.closed_by_peer());
  }
  {
    Client c(f.port());
    REQUIRE(c.send("GARBAGE\r\n\r\n"));
    auto r = c.read();
    REQUIRE(r);
    CHECK(r->status == 400);
  }
  Client c(f.port());  // still serving
  REQUIRE(c.send(get("/healthz")));
  CHECK(c.read()->status == 200);
}

TEST_CASE("idle and slow connections are closed by their timeouts") {
  auto o = ServerFixture::options();
  o.read_timeout = 200ms;
  o.idle_timeout = 300ms;
  ServerFixture f(o);
  Client idle(f.port());
  REQUIRE(idle.send(get("/healthz")));
  REQUIRE(idle.read());
  Client slow(f.port());
  REQUIRE(slow.send("GET /healthz HTTP/1.1\r\nHo"));  // and nothing more
  CHECK(slow.closed_by_peer(2000ms));
  CHECK(idle.closed_by_peer(2000ms));
  CHECK(eventually([&] { return f.server.connections() == 0; }));
}

TEST_CASE("a client that hangs up while its call runs cancels it, the server keeps serving") {
  ServerFixture f;
  f.dispatcher.slow_delay = 2000ms;
  {
    Client c(f.port());
    REQUIRE(c.send(post("/function/slow", "")));
    REQUIRE(f.dispatcher.wait_calls(1).size() == 1);
  }  // closed here, while the function runs
  auto call = f.dispatcher.calls().at(0);
  CHECK(eventually([&] { return call.cancelled->cancelled(); }));
  CHECK(eventually(
      [&] { return f.dispatcher.cancelled_seen.load() == 1; }));  // its late answer was dropped
  Client next(f.port());
  REQUIRE(next.send(post("/function/echo", "still here")));
  auto r = next.read();
  REQUIRE(r);
  CHECK(r->body == "still here");
  CHECK(eventually([&] { return f.server.requests_in_flight() == 0; }));
}

TEST_CASE("a pipelined request sent behind a running call does not cancel it") {
  ServerFixture f;
  f.dispatcher.slow_delay = 200ms;
  Client c(f.port());
  REQUIRE(c.send(post("/function/slow", "")));
  REQUIRE(f.dispatcher.wait_calls(1).size() == 1);
  REQUIRE(c.send(post("/function/echo", "next")));
  auto a = c.read(), b = c.read();
  REQUIRE((a && b));
  CHECK(a->body == "slow done");
  CHECK(b->body == "next");
  CHECK(!f.dispatcher.calls().at(0).cancelled->cancelled());
}

TEST_CASE("async call over HTTP: 202, then /v1/calls/{id} until done") {
  ServerFixture f;
  f.dispatcher.slow_delay = 100ms;
  Client c(f.port());
  REQUIRE(c.send(post("/async-function/slow", "in")));
  auto r = c.read();
  REQUIRE(r);
  CHECK(r->status == 202);
  auto id = r->header("x-call-id");
  REQUIRE(!id.empty());
  std::string state;
  for (int i = 0; i < 200 && state.find("\"done\"") == std::string::npos; ++i) {
    REQUIRE(c.send(get("/v1/calls/" + id)));
    auto s = c.read();
    REQUIRE(s);
    state = s->body;
    std::this_thread::sleep_for(10ms);
  }
  CHECK_THAT(state, Catch::Contains("\"state\":\"done\"") && Catch::Contains("\"status\":200") &&
                        Catch::Contains("\"body_base64\":\"c2xvdyBkb25l\""));
  REQUIRE(c.send(get("/v1/calls/" + id + "?result=raw")));
  auto raw = c.read();
  REQUIRE(raw);
  CHECK(raw->body == "slow done");
}

TEST_CASE("an async call's result is POSTed to its X-Callback-Url") {
  // A one-shot HTTP receiver on loopback.
  int srv = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(srv, reinterpret_cast<sockaddr*>(&addr), sizeof addr) ==
          0);  // Safe: sockaddr_in as sockaddr.
  socklen_t len = sizeof addr;
  getsockname(srv, reinterpret_cast<sockaddr*>(&addr), &len);  // Safe: as above.
  listen(srv, 4);
  std::string received;
  std::thread receiver([&] {
    pollfd p{srv, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) return;
    int c = accept(srv, nullptr, nullptr);
    timeval tv{5, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0) {
      received.append(buf, static_cast<std::size_t>(n));
      if (received.find("\r\n\r\ncallback body") != std::string::npos) break;
    }
    std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    (void)!write(c, ok.data(), ok.size());
    ::close(c);
  });
  {
    ServerFixture f;
    Client c(f.port());
    auto url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/hook?x=1";
    REQUIRE(c.send(
        post("/async-function/echo", "callback body",
             "X-Callback-Url: " + url + "\r\nContent-Type: text/x-cb\r\nX-Call-Id: cb-1\r\n")));
    auto r = c.read();
    REQUIRE(r);
    CHECK(r->status == 202);
    receiver.join();
    CHECK(eventually([&] { return f.callbacks.delivered() == 1; }));
  }
  ::close(srv);
  CHECK_THAT(received, Catch::StartsWith("POST /hook?x=1 HTTP/1.1\r\n") &&
                           Catch::Contains("X-Call-Id: cb-1\r\n") &&
                           Catch::Contains("X-Function-Status: 200\r\n") &&
                           Catch::Contains("X-Duration-Seconds: 0.001500\r\n") &&
                           Catch::Contains("Content-Type: text/x-cb\r\n") &&
                           Catch::EndsWith("\r\n\r\ncallback body"));
}

TEST_CASE("a callback to a dead receiver is tried twice, logged, and blocks nothing") {
  std::mutex mu;
  std::vector<std::string> log;
  http::Callbacks::Options o;
  o.timeout = 500ms;
  o.retry_delay = 20ms;
  o.policy = loopback_allowed();
  o.log = [&](const std::string& line) {
    std::lock_guard lock(mu);
    log.push_back(line);
  };
  http::Callbacks cb(o);
  // A port that was just free: connection refused.
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);  // Safe: sockaddr_in as sockaddr.
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);  // Safe: as above.
  ::close(s);
  auto t0 = std::chrono::steady_clock::now();
  cb.post("http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/x", "dead-1", ok("body"));
  CHECK(std::chrono::steady_clock::now() - t0 < 100ms);  // post() returns at once
  CHECK(eventually([&] { return cb.failed() == 1; }));
  std::lock_guard lock(mu);
  REQUIRE(log.size() == 1);
  CHECK_THAT(log[0], Catch::Contains("dead-1") && Catch::Contains("failed after 2 attempts"));
}

TEST_CASE(
    "stop(grace): /healthz 503 at once, a request on a kept-alive connection and the call under "
    "way are served, each answer closes its connection, then nobody listens") {
  ServerFixture f;
  f.dispatcher.slow_delay = 400ms;
  Client busy(f.port()), other(f.port()), health(f.port());
  REQUIRE(other.send(get("/healthz")));
  REQUIRE(other.read()->status == 200);
  REQUIRE(busy.send(post("/function/slow", "")));
  REQUIRE(f.dispatcher.wait_calls(1).size() == 1);

  auto stopped = std::async(std::launch::async, [&] { f.server.stop(5000ms); });
  REQUIRE(eventually([&] { return f.api.shutting_down(); }));
  REQUIRE(health.send(get("/healthz")));
  REQUIRE(other.send(post("/function/echo", "late")));
  auto h = health.read();
  REQUIRE(h);
  CHECK(h->status == 503);
  CHECK(h->body == "shutting down\n");
  CHECK(h->header("connection") == "close");
  auto late = other.read();
  REQUIRE(late);
  CHECK(late->status == 200);
  CHECK(late->body == "late");
  CHECK(late->header("connection") == "close");

  auto done = busy.read();
  REQUIRE(done);
  CHECK(done->status == 200);
  CHECK(done->body == "slow done");
  CHECK(done->header("connection") == "close");
  CHECK(stopped.wait_for(3s) == std::future_status::ready);
  CHECK(!f.dispatcher.calls().at(0).cancelled->cancelled());
  // Nobody is listening any more.
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(f.port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) !=
        0);  // Safe: sockaddr_in as sockaddr.
  ::close(s);
}

TEST_CASE("stop(grace) closes a connection that waits for a request, well before the grace ends") {
  ServerFixture f;
  Client idle(f.port());
  REQUIRE(idle.send(get("/healthz")));
  REQUIRE(idle.read()->status == 200);
  auto t0 = std::chrono::steady_clock::now();
  f.server.stop(5000ms);
  CHECK(std::chrono::steady_clock::now() - t0 < 2000ms);
  CHECK(idle.closed_by_peer(100ms));
}

TEST_CASE(
    "stop(grace) while clients keep opening connections: every connection that was established "
    "is answered 200, later ones are refused") {
  ServerFixture f;
  const auto port = f.port();
  std::atomic<bool> stopping{false};
  std::atomic<int> answered{0}, failed{0}, refused{0}, after_stop{0};  // after: begun after stop
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t)
    clients.emplace_back([&, t] {
      for (int i = 0;; ++i) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        timeval tv{5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) !=
            0) {  // Safe: sockaddr_in as sockaddr.
          ::close(fd);
          ++refused;
          return;
        }
        const bool late = stopping.load();
        const std::string body = std::to_string(t) + "-" + std::to_string(i);
        const auto req = post("/function/echo", body, "Connection: close\r\n");
        std::string got;
        bool ok =
            ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size());
        char c[4096];
        for (ssize_t n; ok && (n = recv(fd, c, sizeof c, 0)) > 0;)
          got.append(c, static_cast<std::size_t>(n));
        ::close(fd);
        if (ok && got.starts_with("HTTP/1.1 200") && got.ends_with("\r\n\r\n" + body)) {
          ++answered;
          if (late) ++after_stop;
        } else {
          ++failed;
        }
      }
    });
  std::this_thread::sleep_for(300ms);
  stopping = true;
  f.server.stop(5000ms);
  for (auto& c : clients) c.join();
  INFO("answered " << answered << ", after stop began " << after_stop << ", refused " << refused);
  CHECK(failed == 0);
  CHECK(refused == 8);  // each client ends on a refused connection, none on a reset one
  CHECK(answered > 8);
}

TEST_CASE("stop(grace) past its grace closes connections and cancels calls still running") {
  ServerFixture f;
  f.dispatcher.slow_delay = 3000ms;
  Client busy(f.port());
  REQUIRE(busy.send(post("/function/slow", "")));
  REQUIRE(f.dispatcher.wait_calls(1).size() == 1);
  auto t0 = std::chrono::steady_clock::now();
  f.server.stop(100ms);
  CHECK(std::chrono::steady_clock::now() - t0 < 2000ms);
  CHECK(f.dispatcher.calls().at(0).cancelled->cancelled());
  CHECK(busy.closed_by_peer());
}

TEST_CASE("start() says which address it cannot listen on") {
  ServerFixture f;
  auto o = ServerFixture::options();
  o.port = f.port();
  http::Server second(o, f.api);
  CHECK_THROWS_WITH(second.start(),
                    Catch::Contains("cannot listen on 127.0.0.1:" + std::to_string(f.port())));
  o.host = "not an address";
  http::Server third(o, f.api);
  CHECK_THROWS_WITH(third.start(), Catch::Contains("cannot listen on not an address"));
}

TEST_CASE("IPv6 loopback, when the machine has it") {
  auto o = ServerFixture::options();
  o.host = "[::1]";
  ApiFixture a;
  http::Server s(o, a.api);
  try {
    s.start();
  } catch (const std::exception& e) {
    WARN("no IPv6 loopback here: " << e.what());
    return;
  }
  auto r = run("curl -s -g --max-time 5 'http://[::1]:" + std::to_string(s.port()) + "/healthz'");
  CHECK(r.out == "OK\n");
}

TEST_CASE(
    "curl: keep-alive reuse, and a large body with Expect: 100-continue, exact and over the "
    "limit") {
  if (run("command -v curl").rc != 0) {
    WARN("curl is not installed");
    return;
  }
  auto o = ServerFixture::options();
  o.max_body_bytes = 2 * 1024 * 1024;  // large enough for curl to send Expect: 100-continue
  ServerFixture f(o);
  std::string dir = "/tmp/unifn-http-test-" + std::to_string(getpid());
  run("mkdir -p " + dir);
  std::ofstream(dir + "/exact", std::ios::binary) << std::string(o.max_body_bytes, 'e');
  std::ofstream(dir + "/over", std::ios::binary) << std::string(o.max_body_bytes + 1, 'o');
  auto url = "http://127.0.0.1:" + std::to_string(f.port());
  auto exact =
      run("curl -s --max-time 10 -o /dev/null -w '%{http_code} %{size_download}' --data-binary @" +
          dir + "/exact " + url + "/function/echo");
  CHECK(exact.out == "200 " + std::to_string(o.max_body_bytes));
  auto over = run("curl -s --max-time 10 -w ' %{http_code}' --data-binary @" + dir + "/over " +
                  url + "/function/echo");
  CHECK(over.out ==
        "{\"error\":\"the request body is larger than the limit of 2097152 bytes\"}\n 413");
  auto two =
      run("curl -s --max-time 5 -w '%{num_connects}\\n' " + url + "/healthz " + url + "/healthz");
  CHECK(two.out == "OK\n1\nOK\n0\n");  // the second request reused the connection
  run("rm -rf " + dir);
}

TEST_CASE("HEAD on a POST route or an unknown path frames correctly on a kept-alive connection") {
  ServerFixture f;
  Client c(f.port());
  c.expect_head(true);
  REQUIRE(c.send(
      "HEAD /function/echo HTTP/1.1\r\nHost: t\r\n\r\nHEAD /nope HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto wrong = c.read(), unknown = c.read();
  REQUIRE((wrong && unknown));
  CHECK(wrong->status == 405);
  CHECK(unknown->status == 404);
  c.expect_head(false);
  REQUIRE(c.send(get("/healthz")));  // read where the HEAD answers end: no content came with them
  auto g = c.read();
  REQUIRE(g);
  CHECK(g->status == 200);
  CHECK(g->body == "OK\n");
}

namespace {

// A server with connection limits whose gauges and counters go to the fixture's metrics.
struct LimitedServer : ApiFixture {
  LimitedServer(std::size_t total, std::size_t per_client, int descriptor_ceiling = 0)
      : server(options(total, per_client, descriptor_ceiling, metrics), api) {
    server.start();
    dispatcher.slow_delay = 3000ms;  // "slow" holds its connection busy until its client leaves
  }
  static http::ServerOptions options(std::size_t total, std::size_t per_client, int ceiling,
                                     metrics::Metrics& m) {
    auto o = ServerFixture::options();
    o.max_connections = total;
    o.max_connections_per_client = per_client;
    o.descriptor_ceiling = ceiling;
    o.metrics = &m;
    return o;
  }
  std::uint16_t port() const { return server.port(); }
  // Waits until the server counts n idle connections (an answer is read before its connection
  // is idle again).
  bool idle(std::size_t n) {
    return eventually([&] { return server.connections_idle() == n; });
  }
  http::Server server;
};

// A connection whose request is under way: a call to "slow" that the dispatcher holds.
std::unique_ptr<Client> busy_client(LimitedServer& s, std::size_t calls_before,
                                    const char* source = nullptr) {
  auto c = std::make_unique<Client>(s.port(), 3000ms, source);
  REQUIRE(c->send(post("/function/slow", "")));
  REQUIRE(s.dispatcher.wait_calls(calls_before + 1).size() == calls_before + 1);
  return c;
}

// A kept-alive connection between requests.
std::unique_ptr<Client> idle_client(LimitedServer& s, const char* source = nullptr) {
  auto c = std::make_unique<Client>(s.port(), 3000ms, source);
  REQUIRE(c->send(get("/healthz")));
  auto r = c->read();
  REQUIRE(r);
  REQUIRE(r->status == 200);
  return c;
}

}  // namespace

TEST_CASE("at max_connections the longest-idle connection makes room, one mid-request never does") {
  LimitedServer s(3, 10);
  auto running = busy_client(s, 0);
  auto older = idle_client(s);
  REQUIRE(s.idle(1));
  auto newer = idle_client(s);
  REQUIRE(s.idle(2));
  auto fresh = idle_client(s);  // admitted in place of `older`
  CHECK(older->closed_by_peer());
  CHECK(s.server.connections_shed() == 1);
  CHECK(eventually([&] { return s.server.connections() == 3; }));
  REQUIRE(newer->send(get("/healthz")));  // still served
  CHECK(newer->read()->status == 200);
  CHECK(!s.dispatcher.calls().at(0).cancelled->cancelled());  // the call under way goes on
  CHECK_THAT(s.metrics.serialize(),
             Catch::Contains("unifn_http_connections_shed_total{limit=\"max_connections\"} 1") &&
                 Catch::Contains("unifn_http_connections 3"));
}

TEST_CASE(
    "with every connection mid-request a new one is answered 503 with Retry-After and the reason") {
  LimitedServer s(2, 10);
  auto a = busy_client(s, 0);
  auto b = busy_client(s, 1);
  Client c(s.port());
  auto r = c.read();
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->header("retry-after") == "1");
  CHECK(r->header("connection") == "close");
  CHECK(r->body ==
        "{\"error\":\"unifnd holds 2 connections, each with a request under way, and may hold no "
        "more "
        "(limits.max_connections); retry shortly\"}\n");
  CHECK(c.closed_by_peer());
  CHECK(s.server.connections_refused() == 1);
  CHECK(s.server.connections_shed() == 0);
  for (const auto& call : s.dispatcher.calls()) CHECK(!call.cancelled->cancelled());
  CHECK_THAT(s.metrics.serialize(),
             Catch::Contains("unifn_http_connections_refused_total{limit=\"max_connections\"} 1"));
}

TEST_CASE(
    "a client over its own cap loses its own idle connection or is refused, never another client") {
  LimitedServer s(100, 2);
  auto other_idle = idle_client(s, "127.0.0.1");  // idle longest of all
  REQUIRE(s.idle(1));
  auto greedy_busy = busy_client(s, 0, "127.0.0.2");
  auto greedy_idle = idle_client(s, "127.0.0.2");
  REQUIRE(s.idle(2));
  auto greedy_more = busy_client(s, 1, "127.0.0.2");  // in place of greedy_idle, not of other_idle
  CHECK(greedy_idle->closed_by_peer());
  CHECK_THAT(
      s.metrics.serialize(),
      Catch::Contains("unifn_http_connections_shed_total{limit=\"max_connections_per_client\"} 1"));

  Client refused(s.port(), 3000ms, "127.0.0.2");  // both of its connections are busy
  auto r = refused.read();
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK_THAT(r->body, Catch::Contains("this client (127.0.0.2) already holds 2 connections") &&
                          Catch::Contains("limits.max_connections_per_client"));

  // The other client: its idle connection still serves, and a new one is admitted.
  REQUIRE(other_idle->send(get("/healthz")));
  auto again = other_idle->read();
  REQUIRE(again);
  CHECK(again->status == 200);
  auto another = idle_client(s, "127.0.0.1");
  CHECK(s.server.connections_shed() == 1);
  CHECK(s.server.connections_refused() == 1);
}

TEST_CASE(
    "a connection accepted on a descriptor in the reserve is admitted only in place of an idle "
    "one") {
  LimitedServer s(100, 100, 1);  // every descriptor lies in the reserve
  Client first(s.port());
  auto r = first.read();
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK_THAT(r->body, Catch::Contains("limits.reserved_descriptors"));
  CHECK(s.server.connections() == 0);
  CHECK_THAT(
      s.metrics.serialize(),
      Catch::Contains("unifn_http_connections_refused_total{limit=\"reserved_descriptors\"} 1"));
}
