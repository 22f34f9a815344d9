// Callback destinations (issue 10, item 9): the allow list and its default, address literals
// refused at submission, names checked once resolved and connected to by the checked address only,
// a resolver that never answers bounded by its timeout and holding nothing else up.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>

#include "test/unit/http/fakes.h"
#include "src/http/callback_policy.h"

using namespace unifn;
using namespace unifn::test;
using http::CallbackPolicy;
using http::IpAddress;
using http::bhttp::verb;

namespace {

bool eventually(const std::function<bool()>& f, std::chrono::milliseconds limit = 3000ms) {
  for (auto until = std::chrono::steady_clock::now() + limit;
       std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(5ms))
    if (f()) return true;
  return f();
}

std::optional<std::string> refused(const CallbackPolicy& p, const std::string& address) {
  auto a = IpAddress::parse(address);
  REQUIRE(a);
  return p.refuses(*a);
}

// An HTTP receiver on 127.0.0.1 that answers each connection with the next status of its script
// (the last one repeats), and counts the connections it saw.
class Receiver {
 public:
  explicit Receiver(std::vector<int> statuses = {200}) : statuses_(std::move(statuses)) {
    srv_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(srv_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) ==
            0);  // Safe: sockaddr_in as sockaddr.
    socklen_t len = sizeof addr;
    getsockname(srv_, reinterpret_cast<sockaddr*>(&addr), &len);  // Safe: as above.
    port_ = ntohs(addr.sin_port);
    listen(srv_, 8);
    thread_ = std::thread([this] { serve(); });
  }
  ~Receiver() {
    stop_ = true;
    thread_.join();
    ::close(srv_);
  }
  std::uint16_t port() const { return port_; }
  std::string url(const std::string& host, const std::string& path = "/hook") const {
    return "http://" + host + ":" + std::to_string(port_) + path;
  }
  int connections() const { return connections_.load(); }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{srv_, POLLIN, 0};
      if (poll(&p, 1, 20) != 1) continue;
      int c = accept(srv_, nullptr, nullptr);
      if (c < 0) continue;
      const int n = connections_++;
      timeval tv{2, 0};
      setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      std::string got;
      char buf[4096];
      ssize_t r;
      while ((r = read(c, buf, sizeof buf)) > 0) {
        got.append(buf, static_cast<std::size_t>(r));
        auto end = got.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        auto cl = got.find("Content-Length: ");
        if (cl == std::string::npos || cl > end) break;
        if (got.size() >= end + 4 + std::stoul(got.substr(cl + 16))) break;
      }
      const int status =
          statuses_[std::min<std::size_t>(static_cast<std::size_t>(n), statuses_.size() - 1)];
      std::string answer = "HTTP/1.1 " + std::to_string(status) +
                           " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      (void)!write(c, answer.data(), answer.size());
      ::close(c);
    }
  }

  std::vector<int> statuses_;
  int srv_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

// What a scripted resolver saw; shared with its threads, which may outlive the test's scope.
struct ResolverLog {
  std::mutex mu;
  std::vector<std::string> asked;
  std::size_t count() {
    std::lock_guard lock(mu);
    return asked.size();
  }
};

// A resolver that answers from a table (each name's answers in turn, the last one repeating).
http::Callbacks::Options scripted(
    std::map<std::string, std::vector<std::vector<std::string>>> table,
    std::shared_ptr<ResolverLog> log) {
  http::Callbacks::Options o;
  o.timeout = 1000ms;
  o.retry_delay = 20ms;
  o.log = [](const std::string&) {};
  o.resolve = [table = std::move(table), log](const std::string& host,
                                              std::string& error) -> std::vector<std::string> {
    std::size_t n;
    {
      std::lock_guard lock(log->mu);
      n = static_cast<std::size_t>(std::count(log->asked.begin(), log->asked.end(), host));
      log->asked.push_back(host);
    }
    auto it = table.find(host);
    if (it == table.end()) {
      error = "Name or service not known";
      return {};
    }
    return it->second[std::min(n, it->second.size() - 1)];
  };
  return o;
}

// The last outcome a delivery told.
struct Outcomes {
  std::mutex mu;
  std::vector<std::string> seen;
  http::Callbacks::Outcome sink() {
    return [this](std::string s) {
      std::lock_guard lock(mu);
      seen.push_back(std::move(s));
    };
  }
  std::string last() {
    std::lock_guard lock(mu);
    return seen.empty() ? "" : seen.back();
  }
  std::size_t count() {
    std::lock_guard lock(mu);
    return seen.size();
  }
};

}  // namespace

TEST_CASE(
    "the default allow list refuses loopback, link-local, private and special ranges in every "
    "form") {
  const CallbackPolicy p;  // [public]
  for (const char* a :
       {"127.0.0.1", "127.255.255.254", "10.0.0.1", "10.255.255.255", "172.16.0.1",
        "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.127.255.255", "169.254.169.254",
        "169.254.0.1", "0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250", "255.255.255.255",
        "240.0.0.1", "192.0.0.8", "198.18.0.1", "192.0.2.1",
        // IPv6, and IPv6 forms of refused IPv4 addresses
        "::1", "::", "fe80::1", "febf::1", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1",
        "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "::ffff:7f00:1",
        "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "2002:7f00:1::1",
        "2002:a9fe:a9fe::", "::127.0.0.1",
        // what a resolver takes as a numeric IPv4 host
        "127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "0xa9fea9fe"}) {
    INFO(a);
    CHECK(refused(p, a));
  }
  for (const char* a : {"8.8.8.8", "1.1.1.1", "93.184.216.34", "172.32.0.1", "100.128.0.1",
                        "169.253.255.255", "2606:4700:4700::1111", "2a00:1450::1",
                        "64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8"}) {
    INFO(a);
    CHECK_FALSE(refused(p, a));
  }
  CHECK(refused(p, "127.0.0.1") ==
        "127.0.0.1 is a loopback address, which callbacks.allow does not include");
  CHECK(refused(p, "::ffff:169.254.169.254") ==
        "169.254.169.254 is a link-local address (169.254.0.0/16, where cloud metadata services "
        "answer), which "
        "callbacks.allow does not include");
  CHECK(refused(p, "2130706433") ==
        "127.0.0.1 is a loopback address, which callbacks.allow does not include");
  CHECK_THAT(*refused(p, "64:ff9b::a9fe:a9fe"),
             Catch::StartsWith("64:ff9b::a9fe:a9fe is the NAT64 form of 169.254.169.254"));
  CHECK_THAT(*refused(p, "fd00::1"), Catch::Contains("private address (unique local fc00::/7)"));
}

TEST_CASE("an allow list replaces the default: ranges, addresses, public, and nothing at all") {
  const CallbackPolicy loop({"127.0.0.0/8"});
  CHECK_FALSE(refused(loop, "127.0.0.1"));
  CHECK_FALSE(refused(loop, "::ffff:127.0.0.9"));  // an IPv4 range covers the mapped form too
  CHECK(refused(loop, "::1") ==
        "::1 is a loopback address, which callbacks.allow does not include");
  CHECK(refused(loop, "8.8.8.8") ==
        "8.8.8.8 is not in callbacks.allow");  // no `public` in this list

  const CallbackPolicy mixed({"public", "10.1.0.0/16", "fd00:1::/64", "192.168.7.7"});
  CHECK_FALSE(refused(mixed, "8.8.8.8"));
  CHECK_FALSE(refused(mixed, "10.1.200.3"));
  CHECK(refused(mixed, "10.2.0.1"));
  CHECK_FALSE(refused(mixed, "fd00:1::42"));
  CHECK(refused(mixed, "fd00:2::42"));
  CHECK_FALSE(refused(mixed, "192.168.7.7"));
  CHECK(refused(mixed, "192.168.7.8"));
  CHECK(refused(mixed, "169.254.169.254"));

  const CallbackPolicy v6_all({"::/0"});
  CHECK_FALSE(refused(v6_all, "::1"));
  CHECK(refused(v6_all, "10.0.0.1"));  // an IPv6 range never opens IPv4
  CHECK(refused(v6_all, "::ffff:10.0.0.1"));

  const CallbackPolicy none(std::vector<std::string>{});
  CHECK(refused(none, "8.8.8.8"));

  CHECK(CallbackPolicy().refuses_host("example.com") ==
        std::nullopt);  // a name: checked once resolved
  CHECK(CallbackPolicy().refuses_host("127.1"));
  CHECK(CallbackPolicy().refuses_host("::ffff:127.0.0.1"));
}

TEST_CASE("allow list entries that are not ranges are refused with the reason") {
  CHECK(CallbackPolicy::entry_problem("public") == std::nullopt);
  CHECK(CallbackPolicy::entry_problem("10.0.0.0/8") == std::nullopt);
  CHECK(CallbackPolicy::entry_problem("::1") == std::nullopt);
  CHECK(CallbackPolicy::entry_problem("::ffff:127.0.0.0/104") == std::nullopt);
  CHECK(CallbackPolicy::entry_problem("10.0.0.1/8") ==
        "'10.0.0.1/8' has bits set past its /8 prefix (the range starts at 10.0.0.0)");
  CHECK(CallbackPolicy::entry_problem("10.0.0.0/33") ==
        "'10.0.0.0/33': the prefix length must be a number from 0 to 32");
  CHECK(CallbackPolicy::entry_problem("fd00::/129") ==
        "'fd00::/129': the prefix length must be a number from 0 to 128");
  CHECK(CallbackPolicy::entry_problem("10.0.0.0/") ==
        "'10.0.0.0/': the prefix length must be a number from 0 to 32");
  CHECK_THAT(*CallbackPolicy::entry_problem("example.com"),
             Catch::Contains("is not an IP address, a CIDR range"));
  CHECK_THAT(*CallbackPolicy::entry_problem("127.1"),
             Catch::Contains("is not an IP address"));  // strict forms only
  CHECK_THAT(*CallbackPolicy::entry_problem("::ffff:0:0/64"),
             Catch::Contains("must be /96 or longer"));
  CHECK_THROWS_WITH(CallbackPolicy({"public", "nope"}),
                    Catch::StartsWith("callbacks.allow: 'nope' is not"));
}

TEST_CASE("a callback to a refused address literal never connects and is not retried") {
  Receiver rx;
  auto log = std::make_shared<ResolverLog>();
  Outcomes out;
  {
    http::Callbacks cb(scripted({}, log));  // the default allow list
    cb.post(rx.url("127.0.0.1"), "lit-1", ok("x"), out.sink());
    cb.post(rx.url("[::ffff:127.0.0.1]"), "lit-2", ok("x"), out.sink());
    cb.post(rx.url("127.1"), "lit-3", ok("x"), out.sink());
    CHECK(eventually([&] { return cb.failed() == 3; }));
    CHECK(cb.delivered() == 0);
  }
  CHECK(rx.connections() == 0);
  CHECK(log->count() == 0);  // literals are never handed to a resolver
  CHECK(out.count() == 3);
  CHECK(out.last() ==
        "refused: 127.0.0.1 is a loopback address, which callbacks.allow does not include");
}

TEST_CASE(
    "a name is resolved, checked, and connected to at the checked address only, on every attempt") {
  Receiver rx({500, 200});  // the first attempt fails: the retry must not resolve again
  auto log = std::make_shared<ResolverLog>();
  Outcomes out;
  // The second answer would rebind the name to the metadata address: never asked for.
  auto o = scripted({{"hooks.test", {{"10.9.9.9", "127.0.0.1"}, {"169.254.169.254"}}}}, log);
  o.policy = CallbackPolicy({"127.0.0.1"});
  {
    http::Callbacks cb(o);
    cb.post(rx.url("hooks.test"), "name-1", ok("x"), out.sink());
    CHECK(eventually([&] { return cb.delivered() == 1; }));
  }
  CHECK(rx.connections() == 2);  // both attempts reached 127.0.0.1
  CHECK(log->count() == 1);      // one resolution for both attempts
  CHECK(out.last() == "delivered");
}

TEST_CASE("a name that resolves only to refused addresses is refused with the reason") {
  Receiver rx;
  auto log = std::make_shared<ResolverLog>();
  Outcomes out;
  auto o = scripted({{"internal.test", {{"10.1.2.3", "169.254.169.254"}}}}, log);
  {
    http::Callbacks cb(o);
    cb.post(rx.url("internal.test"), "name-2", ok("x"), out.sink());
    CHECK(eventually([&] { return cb.failed() == 1; }));
  }
  CHECK(out.last() ==
        "refused: internal.test resolves only to refused addresses: 10.1.2.3 is a private address "
        "(10.0.0.0/8), which "
        "callbacks.allow does not include");
  CHECK(log->count() == 1);  // not retried: the policy would answer the same

  // The system resolver too: localhost comes from /etc/hosts, without a network.
  Outcomes sys;
  {
    http::Callbacks::Options plain;
    plain.log = [](const std::string&) {};
    http::Callbacks cb(plain);
    cb.post(rx.url("localhost"), "name-3", ok("x"), sys.sink());
    CHECK(eventually([&] { return cb.failed() == 1; }));
  }
  CHECK_THAT(sys.last(),
             Catch::StartsWith("refused: localhost resolves only to refused addresses: ") &&
                 Catch::Contains("is a loopback address"));
  CHECK(rx.connections() == 0);
}

TEST_CASE(
    "a resolver that never answers fails the delivery at its timeout and holds up nothing else") {
  Receiver rx;
  auto stuck = std::make_shared<std::atomic<int>>(0);
  Outcomes slow, quick;
  http::Callbacks::Options o;
  o.timeout = 1000ms;
  o.retry_delay = 20ms;
  o.resolve_timeout = 200ms;
  o.resolver_threads = 1;
  o.policy = CallbackPolicy({"127.0.0.1"});
  o.log = [](const std::string&) {};
  // Blocks like a resolver whose server never answers; it outlives the test on its detached thread.
  o.resolve = [stuck](const std::string&, std::string&) -> std::vector<std::string> {
    ++*stuck;
    std::this_thread::sleep_for(3s);
    return {"127.0.0.1"};
  };
  {
    http::Callbacks cb(o);
    const auto t0 = std::chrono::steady_clock::now();
    cb.post(rx.url("blackhole.test"), "stuck-1", ok("x"), slow.sink());
    // A literal needs no resolver: delivered while the lookup hangs.
    cb.post(rx.url("127.0.0.1"), "quick-1", ok("x"), quick.sink());
    CHECK(eventually([&] { return cb.delivered() == 1; }, 1000ms));
    CHECK(quick.last() == "delivered");
    CHECK(eventually([&] { return cb.failed() == 1; }, 2000ms));
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(took < 1500ms);  // two attempts of 200 ms and the pause, not the resolver's 3 s
    CHECK(slow.last() == "failed: cannot resolve blackhole.test: no answer within 200 ms");
    // The second attempt's lookup queued behind the stuck one and was skipped once late.
    CHECK(stuck->load() == 1);
  }
  CHECK(rx.connections() == 1);
}

TEST_CASE(
    "submission: a refused address literal is answered 400 with the reason, and a name shows its "
    "refusal in "
    "GET /v1/calls/{id}") {
  metrics::Metrics metrics;
  http::CallStore calls{100, std::chrono::seconds(60)};
  auto log = std::make_shared<ResolverLog>();
  http::Callbacks callbacks{
      scripted({{"hooks.internal", {{"192.168.0.10"}}}}, log)};  // the default allow list
  FakeDispatcher dispatcher;
  http::Api api{dispatcher, metrics, calls, callbacks, "fake"};
  auto call = [&](const std::string& target,
                  std::vector<std::pair<std::string, std::string>> headers) {
    http::Request req{verb::post, target, 11};
    for (const auto& [k, v] : headers) req.set(k, v);
    std::optional<http::Response> out;
    api.handle(std::move(req), [&](http::Response r) { out = std::move(r); });
    REQUIRE(out);
    return *out;
  };

  auto r = call("/async-function/echo",
                {{"X-Callback-Url", "http://169.254.169.254/latest/meta-data/"}});
  CHECK(r.result_int() == 400);
  CHECK(r.body() ==
        "{\"error\":\"X-Callback-Url 'http://169.254.169.254/latest/meta-data/' is refused: "
        "169.254.169.254 is a "
        "link-local address (169.254.0.0/16, where cloud metadata services answer), which "
        "callbacks.allow does not "
        "include\"}\n");
  for (const char* url : {"http://127.0.0.1:8080/", "http://[::1]/", "http://[::ffff:10.0.0.1]/x",
                          "http://0x7f.1/", "http://10.0.0.1/", "http://[fe80::1]:9/"}) {
    INFO(url);
    CHECK(call("/async-function/echo", {{"X-Callback-Url", url}}).result_int() == 400);
  }
  CHECK(dispatcher.calls().empty());  // refused before anything ran
  CHECK(calls.size() == 0);

  r = call("/async-function/echo",
           {{"X-Callback-Url", "http://hooks.internal:9000/done"}, {"X-Call-Id", "via-name"}});
  CHECK(r.result_int() == 202);
  std::string status;
  CHECK(eventually([&] {
    std::optional<http::Response> got;
    api.handle(http::Request{verb::get, "/v1/calls/via-name", 11},
               [&](http::Response res) { got = std::move(res); });
    status = got ? got->body() : "";
    return status.find("\"callback\":\"refused") != std::string::npos;
  }));
  CHECK(status ==
        "{\"id\":\"via-name\",\"function\":\"echo\",\"state\":\"done\",\"status\":200,\"duration_"
        "seconds\":0.0015,"
        "\"start\":\"restored\",\"content_type\":\"application/"
        "octet-stream\",\"body_base64\":\"\",\"callback\":\"refused: hooks.internal "
        "resolves only to refused addresses: 192.168.0.10 is a private address (192.168.0.0/16), "
        "which "
        "callbacks.allow does not include\"}\n");
}

TEST_CASE("GET /v1/calls/{id} shows a callback pending, then delivered") {
  Receiver rx;
  ApiFixture f;  // allows loopback, as every test with a receiver on this host must
  auto r = f.call(verb::post, "/async-function/held", "",
                  {{"X-Callback-Url", rx.url("127.0.0.1")}, {"X-Call-Id", "cb-ok"}});
  CHECK(r.result_int() == 202);
  REQUIRE(f.dispatcher.wait_held(1));
  CHECK_THAT(f.call(verb::get, "/v1/calls/cb-ok").body(),
             Catch::Contains("\"callback\":\"pending\""));
  f.dispatcher.release(ok("out"));
  CHECK(eventually([&] {
    return f.call(verb::get, "/v1/calls/cb-ok").body().find("\"callback\":\"delivered\"") !=
           std::string::npos;
  }));
  // No callback, no key.
  f.call(verb::post, "/async-function/echo", "", {{"X-Call-Id", "no-cb"}});
  CHECK(f.call(verb::get, "/v1/calls/no-cb").body().find("callback") == std::string::npos);
}
