// Hostile values against the HTTP layer: header values checked in one place (no response splitting
// from a function's content type, in answers and in callbacks), env values hidden, and /metrics
// scrapes racing a reload.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/beast/http/write.hpp>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test/unit/http/fakes.h"
#include "src/http/header.h"

using namespace unifn;
using namespace unifn::test;
using http::bhttp::verb;

namespace {

const std::string kSplit = "text/plain\r\nX-Injected: 1";

// The response as it goes on the wire.
std::string wire(const http::Response& r) {
  std::ostringstream o;
  o << r;
  return o.str();
}

bool eventually(const std::function<bool()>& f, std::chrono::milliseconds limit = 3000ms) {
  for (auto until = std::chrono::steady_clock::now() + limit;
       std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(5ms))
    if (f()) return true;
  return f();
}

// A one-shot HTTP receiver on loopback: keeps what the first connection sends until its body ends
// (Content-Length), answers 200.
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
    port_ = ntohs(addr.sin_port);
    listen(srv_, 4);
    thread_ = std::thread([this] { serve(); });
  }
  ~Receiver() {
    if (thread_.joinable()) thread_.join();
    ::close(srv_);
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  // Waits for the connection to end; what the client sent.
  std::string received() {
    if (thread_.joinable()) thread_.join();
    return received_;
  }

 private:
  void serve() {
    pollfd p{srv_, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) return;
    int c = accept(srv_, nullptr, nullptr);
    timeval tv{5, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0) {
      received_.append(buf, static_cast<std::size_t>(n));
      auto end = received_.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      auto cl = received_.find("Content-Length: ");
      if (cl == std::string::npos || cl > end) break;
      if (received_.size() >= end + 4 + std::stoul(received_.substr(cl + 16))) break;
    }
    std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    (void)!write(c, ok.data(), ok.size());
    ::close(c);
  }

  int srv_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::string received_;
};

}  // namespace

TEST_CASE("valid_field_value follows RFC 9110's field-value: no CTL but HTAB") {
  using http::valid_field_value;
  CHECK(valid_field_value(""));
  CHECK(valid_field_value("text/plain; charset=utf-8"));
  CHECK(valid_field_value("a\tb"));                  // HTAB inside
  CHECK(valid_field_value("caf\xc3\xa9 \x80\xff"));  // obs-text
  CHECK(valid_field_value("~!#$%&'*+-.^_`|\"(),/:;<=>?@[\\]{}"));
  CHECK_FALSE(valid_field_value("text/plain\r\nX-Injected: 1"));
  CHECK_FALSE(valid_field_value("a\rb"));
  CHECK_FALSE(valid_field_value("a\nb"));
  CHECK_FALSE(valid_field_value(std::string("a\0b", 3)));
  CHECK_FALSE(valid_field_value("a\x7f"));
  CHECK_FALSE(valid_field_value("\x1b[31m"));
  for (int c = 0; c < 0x20; ++c)
    CHECK(valid_field_value(std::string(1, static_cast<char>(c))) == (c == '\t'));

  CHECK(http::field_value_problem("fine") == std::nullopt);
  CHECK(http::field_value_problem("text/plain\r\nX-Injected: 1") == "byte 0x0d at offset 10");
  CHECK(http::field_value_problem("\n") == "byte 0x0a at offset 0");
  CHECK(http::field_value_problem("ab\x7f") == "byte 0x7f at offset 2");
  CHECK(http::field_value_problem(std::string("\tx\0", 3)) == "byte 0x00 at offset 2");
}

TEST_CASE("valid_field_name takes tokens only") {
  CHECK(http::valid_field_name("X-Call-Id"));
  CHECK(http::valid_field_name("a!#$%&'*+-.^_`|~9"));
  CHECK_FALSE(http::valid_field_name(""));
  CHECK_FALSE(http::valid_field_name("X Call"));
  CHECK_FALSE(http::valid_field_name("X:Call"));
  CHECK_FALSE(http::valid_field_name("X-A\r\nX-B"));
}

TEST_CASE("set_field trims OWS, writes valid values and never writes an invalid one") {
  http::Response r;
  CHECK(http::set_field(r, http::bhttp::field::content_type, "  text/plain\t "));
  CHECK(header(r, "Content-Type") == "text/plain");
  CHECK(http::set_field(r, "X-Tab", "a\tb"));
  CHECK(header(r, "X-Tab") == "a\tb");
  CHECK(http::set_field(r, "X-Empty", " "));
  CHECK(r.count("X-Empty") == 1);
  CHECK(header(r, "X-Empty").empty());

  CHECK_FALSE(http::set_field(r, http::bhttp::field::content_type, kSplit));
  CHECK(header(r, "Content-Type") == "text/plain");  // the earlier value stays
  CHECK_FALSE(http::set_field(r, "X-Call-Id", "id\r\nX-Injected: 1"));
  CHECK_FALSE(http::set_field(r, "X-Bad\r\nX-Injected", "1"));
  CHECK_FALSE(http::set_field(r, "X-Nul", std::string("a\0", 2)));
  CHECK(r.count("X-Call-Id") == 0);
  CHECK(r.count("X-Nul") == 0);
  CHECK(wire(r).find("X-Injected") == std::string::npos);
}

TEST_CASE("a function's content type with CR LF is answered 502 with the reason, never written") {
  ApiFixture f;
  f.dispatcher.add("split");
  f.dispatcher.results["split"] = ok("smuggled", kSplit);
  auto r = f.call(verb::post, "/function/split", "x");
  CHECK(r.result_int() == 502);
  CHECK(header(r, "Content-Type") == "application/json");
  CHECK(r.body() ==
        "{\"error\":\"the function answered with a content type holding control bytes (byte 0x0d "
        "at offset 10)\"}\n");
  CHECK(r.count("X-Injected") == 0);
  CHECK(hex32(header(r, "X-Call-Id")));
  CHECK(header(r, "X-Unifn-Start") == "restored");  // an instance ran and answered badly
  auto bytes = wire(r);
  CHECK(bytes.find("X-Injected") == std::string::npos);
  CHECK(bytes.find("smuggled") == std::string::npos);
  CHECK_THAT(f.metrics.serialize(),
             Catch::Contains("unifn_invocations_total{code=\"502\",function=\"split\"} 1"));

  // Any control byte: LF alone, NUL, DEL, ESC.
  for (std::string bad :
       {std::string("text/plain\nX-Injected: 1"), std::string("text/plain\0x", 12),
        std::string("text/\x7fplain"), std::string("\x1b[31m")}) {
    f.dispatcher.results["split"] = ok("smuggled", bad);
    auto again = f.call(verb::post, "/function/split");
    CHECK(again.result_int() == 502);
    CHECK_THAT(again.body(), Catch::Contains("content type holding control bytes (byte 0x"));
  }

  // HTAB is part of a field value; surrounding whitespace is trimmed.
  f.dispatcher.results["split"] = ok("fine", "text/plain;\tcharset=utf-8 ");
  auto good = f.call(verb::post, "/function/split");
  CHECK(good.result_int() == 200);
  CHECK(header(good, "Content-Type") == "text/plain;\tcharset=utf-8");
  CHECK(good.body() == "fine");
}

TEST_CASE("an async call whose content type holds CR LF is stored and shown as the 502") {
  ApiFixture f;
  f.dispatcher.add("split");
  f.dispatcher.results["split"] = ok("smuggled", kSplit);
  auto r = f.call(verb::post, "/async-function/split", "x", {{"X-Call-Id", "split-1"}});
  REQUIRE(r.result_int() == 202);
  REQUIRE(eventually([&] {
    return f.calls.get("split-1") && f.calls.get("split-1")->state == http::CallState::Done;
  }));
  auto state = f.call(verb::get, "/v1/calls/split-1");
  CHECK_THAT(
      state.body(),
      Catch::Contains("\"status\":502") &&
          Catch::Contains("\"error\":\"the function answered with a content type holding control "
                          "bytes (byte 0x0d at offset 10)\""));
  auto raw = f.call(verb::get, "/v1/calls/split-1?result=raw");
  CHECK(raw.result_int() == 502);
  CHECK(raw.count("X-Injected") == 0);
  CHECK(wire(raw).find("X-Injected") == std::string::npos);
}

TEST_CASE("a client's X-Call-Id that could split a header is refused before anything is written") {
  ApiFixture f;
  // Beast's parser refuses CR and LF in a header from the socket; valid_call_id refuses the rest.
  for (const char* bad : {"a b", "a\tb", "a;b", "a\x7f"}) {
    auto r = f.call(verb::post, "/function/echo", "x", {{"X-Call-Id", bad}});
    CHECK(r.result_int() == 400);
    CHECK(r.count("X-Call-Id") == 0);
  }
  CHECK(f.dispatcher.calls().empty());
}

TEST_CASE(
    "a callback never carries a content type with CR LF: the receiver gets the 502 and its "
    "reason") {
  Receiver rx;
  {
    http::Callbacks::Options o;
    o.timeout = 2000ms;
    o.retry_delay = 20ms;
    o.policy = loopback_allowed();
    http::Callbacks cb(o);
    cb.post(rx.url("/hook"), "cb-split", ok("smuggled", kSplit));
    auto got = rx.received();
    CHECK(eventually([&] { return cb.delivered() == 1; }));
    CHECK_THAT(
        got, Catch::StartsWith("POST /hook HTTP/1.1\r\n") &&
                 Catch::Contains("X-Call-Id: cb-split\r\n") &&
                 Catch::Contains("X-Function-Status: 502\r\n") &&
                 Catch::Contains("Content-Type: application/json\r\n") &&
                 Catch::EndsWith(
                     "{\"error\":\"the function answered with a content type holding control bytes "
                     "(byte 0x0d at offset 10)\"}\n"));
    CHECK(got.find("X-Injected") == std::string::npos);
    CHECK(got.find("smuggled") == std::string::npos);
  }
}

TEST_CASE("a callback's error with a guest's foreign bytes is valid JSON") {
  Receiver rx;
  {
    http::Callbacks::Options o;
    o.timeout = 2000ms;
    o.retry_delay = 20ms;
    o.policy = loopback_allowed();
    http::Callbacks cb(o);
    cb.post(rx.url("/hook"), "cb-foreign", failed(runtime::CallOutcome::Failed, kForeignText));
    auto got = rx.received();
    CHECK(eventually([&] { return cb.delivered() == 1; }));
    CHECK_THAT(got, Catch::Contains("X-Function-Status: 502\r\n") &&
                        Catch::Contains("Content-Type: application/json\r\n"));
    auto body = got.find("\r\n\r\n");
    REQUIRE(body != std::string::npos);
    CHECK(nlohmann::json::parse(got.substr(body + 4)) ==
          nlohmann::json{{"error", kForeignTextRead}});
  }
}

TEST_CASE("/system/functions shows the names of environment variables, never their values") {
  ApiFixture f;
  for (const auto& body : {f.call(verb::get, "/system/functions").body(),
                           f.call(verb::get, "/system/function/echo").body()}) {
    CHECK_THAT(body,
               Catch::Contains("\"envVars\":{\"MODEL\":\"(hidden)\",\"QUOTE\":\"(hidden)\"}"));
    CHECK(body.find("fashion") == std::string::npos);
    CHECK(body.find("a \\\"b\\\"") == std::string::npos);
  }
}

namespace {
// Functions f0..f31 on every other call of functions(), none on the others: each /metrics scrape
// sees either a reload that added them all or one that retired them all. It notes when two
// scrapes ask for the list at once.
class FlappingDispatcher : public runtime::Dispatcher {
 public:
  void invoke(runtime::Invocation, runtime::Completion done) override {
    done(failed(runtime::CallOutcome::NoSuchFunction, "none"));
  }
  std::vector<runtime::FunctionStatus> functions() const override {
    if (inside_.fetch_add(1) > 0) ++overlaps;
    std::this_thread::sleep_for(100us);  // widens the window in which another scrape could run
    std::vector<runtime::FunctionStatus> out;
    if (flip_.fetch_add(1) % 2 == 1) {
      for (int i = 0; i < 32; ++i) {
        runtime::FunctionStatus f;
        f.name = "f" + std::to_string(i);
        f.queued = 1;
        f.instances = 2;
        f.idle_instances = 1;
        out.push_back(f);
      }
    }
    inside_.fetch_sub(1);
    return out;
  }
  std::optional<runtime::FunctionStatus> function(std::string_view) const override {
    return std::nullopt;
  }
  mutable std::atomic<int> overlaps{0};

 private:
  mutable std::atomic<unsigned> flip_{0};
  mutable std::atomic<int> inside_{0};
};
}  // namespace

TEST_CASE("/metrics scrapes racing reloads sample and set the gauges one at a time") {
  // Before the fix each scrape read the functions and set their gauges outside the lock, through
  // the reference prometheus-cpp's Family::Add hands out, while another scrape that saw the
  // functions retired removed (freed) those gauges: a heap use after free (ASan reports it when
  // the interleaving is hit; it corrupts the heap without ASan). Now a scrape reads the functions,
  // sets their gauges and removes the retired ones in one critical section, which is what
  // `overlaps` checks: deterministically, whatever the timing.
  metrics::Metrics m;
  http::CallStore calls{10, std::chrono::seconds(60)};
  http::Callbacks callbacks;
  FlappingDispatcher d;
  http::Api api{d, m, calls, callbacks, "fake"};
  std::atomic<int> ok200{0};
  std::vector<std::thread> scrapers;
  for (int t = 0; t < 4; ++t)
    scrapers.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        http::Request req{verb::get, "/metrics", 11};
        api.handle(std::move(req), [&](http::Response r) {
          if (r.result_int() == 200) ++ok200;
        });
      }
    });
  for (auto& t : scrapers) t.join();
  CHECK(ok200 == 800);
  CHECK(d.overlaps == 0);
  // The gauges follow the last scrape's view, whichever it was: all 32 functions or none.
  for (int last = 0; last < 2; ++last) {
    http::Request req{verb::get, "/metrics", 11};
    std::string text;
    api.handle(std::move(req), [&](http::Response r) { text = r.body(); });
    const bool listed = text.find("unifn_queue_depth{function=\"f0\"} 1") != std::string::npos;
    CHECK(listed == (text.find("unifn_queue_depth{function=\"f31\"} 1") != std::string::npos));
    CHECK(listed ==
          (text.find("unifn_instances{function=\"f7\",state=\"busy\"} 1") != std::string::npos));
    CHECK(listed ==
          (text.find("unifn_instances{function=\"f7\",state=\"idle\"} 1") != std::string::npos));
  }
}
