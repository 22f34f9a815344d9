// libFuzzer target: hostile HTTP clients. The input's first byte picks the mode, the rest is what a
// client sends (any methods, targets, headers and bodies, pipelined):
//   mode & 7 != 7  parsed here with Beast's request parser under the server's limits, every request
//                  handed to a fresh Api (all routes) over a fake dispatcher;
//   mode & 7 == 7  written to a real Server on 127.0.0.1 (Beast sessions, keep-alive, pipelining,
//                  limits, 100-continue), half-closed, and its whole answer read back.
// The fake dispatcher is test/unit/http/fakes.h's, with functions whose answers are hostile
// ("mirror" answers whatever status, content type, error and body its request body names; others
// have control bytes in their content type, or errors with CR/LF), and none that answers late.
// Checked: Api::handle answers exactly once ("http-reply") and throws nothing ("escaped"); no
// answer is a 500 "internal error" ("http-internal"); every header name is a token and every
// value an RFC 9110 field value ("http-header"); an answer serialises and parses back as one
// response with the same header fields ("http-splitting"); the server answers or closes within
// its timeouts ("http-hang"), and what it sends parses as responses with valid headers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <fmt/format.h>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "test/unit/http/fakes.h"
#include "test/fuzz/fuzz_common.h"
#include "src/http/api.h"
#include "src/http/header.h"
#include "src/http/server.h"

using namespace unifn;
using namespace unifn::fuzz;
namespace beast = boost::beast;
namespace bhttp = beast::http;

namespace {

constexpr std::size_t kMaxBody = 64u << 10;
constexpr std::size_t kMaxHeader = 16384;  // the server's default
constexpr int kMaxRequests = 16;

// fakes.h's dispatcher, with "mirror": its body "status|content type|error|body" is its answer
// (status 100-599 as a function answers, or one of the runtime's own with an error).
class Dispatcher final : public test::FakeDispatcher {
 public:
  Dispatcher() {
    remove("slow");  // answers from a thread of its own, joined only at the end
    remove("held");  // keeps its completion until released
    add("mirror");
    for (const char* n : {"badtype", "lftype", "nultype", "errcrlf", "status0", "status999",
                          "informational", "nocontent", "trailing"})
      add(n);
    results["badtype"] = test::ok("x", "text/plain\r\nX-Injected: yes");
    results["lftype"] = test::ok("x", "text/html\nSet-Cookie: a=b");
    results["nultype"] = test::ok("x", std::string("text/plain\0evil", 15));
    results["errcrlf"] = test::failed(runtime::CallOutcome::Failed, "boom\r\nX-Injected: yes");
    results["status0"] = test::ok("x");
    results["status0"].status = 0;
    results["status999"] = test::ok("x");
    results["status999"].status = 999;
    results["informational"] = test::ok("body of a 101");
    results["informational"].status = 101;
    results["nocontent"] = test::ok("body of a 204");
    results["nocontent"].status = 204;
    results["trailing"] = test::ok("x", " text/plain \t");
  }
  void invoke(runtime::Invocation call, runtime::Completion done) override {
    if (call.function != "mirror") return FakeDispatcher::invoke(std::move(call), std::move(done));
    std::vector<std::string> parts;
    std::string_view b = call.body;
    for (int i = 0; i < 3; ++i) {
      auto bar = b.find('|');
      parts.emplace_back(b.substr(0, bar));
      b = bar == std::string_view::npos ? std::string_view() : b.substr(bar + 1);
    }
    runtime::InvocationResult r;
    unsigned status = 0;
    for (char c : parts[0]) status = status * 10 + static_cast<unsigned>(c & 0x0F);
    r.content_type = parts[1];
    r.error = parts[2];
    r.body = std::string(b);
    // Every failure the runtime or the HTTP layer gives a call (NoSuchFunction through NotKept).
    constexpr unsigned kFailures = static_cast<unsigned>(runtime::CallOutcome::NotKept);
    if (r.error.empty())
      r.status = static_cast<int>(100 + status % 500);
    else
      r.outcome = static_cast<runtime::CallOutcome>(1 + status % kFailures);
    r.start = static_cast<runtime::StartKind>(status % 3);
    done(std::move(r));
  }
};

// What the Api refers to, made once and in the daemon's order: the callbacks' thread (which tells
// the call store how a delivery went) ends before the store goes.
struct Shared {
  metrics::Metrics metrics;
  http::CallStore calls{8, std::chrono::seconds(60)};
  http::Callbacks callbacks{[] {
    http::Callbacks::Options o;
    o.timeout = std::chrono::milliseconds(200);
    o.retry_delay = std::chrono::milliseconds(10);
    o.max_pending = 64;
    o.log = [](const std::string&) {};
    return o;
  }()};
};
Shared& shared() {
  static Shared s;
  return s;
}

Dispatcher& dispatcher() {
  static Dispatcher d;
  return d;
}

template <bool isRequest, typename Fields>
void check_fields(const bhttp::header<isRequest, Fields>& h, const std::string& context) {
  for (const auto& f : h) {
    const auto name = f.name_string();
    const auto value = f.value();
    if (!http::valid_field_name(std::string_view(name.data(), name.size())))
      finding("http-header", fmt::format("{}: header name '{}' is not a token", context,
                                         std::string_view(name.data(), name.size())));
    if (auto why = http::field_value_problem(std::string_view(value.data(), value.size())))
      finding("http-header", fmt::format("{}: header {}'s value is not a field value ({})", context,
                                         std::string_view(name.data(), name.size()), *why));
  }
}

// Parses one response off the front of `wire`; nullopt (and `wire` unchanged) when incomplete.
std::optional<http::Response> parse_response(std::string_view& wire, bool head,
                                             beast::error_code& ec) {
  bhttp::response_parser<bhttp::string_body> p;
  p.eager(true);
  p.skip(head);
  p.body_limit(64u << 20);
  p.header_limit(1u << 20);  // an echoed header may be as long as the request's (16 KiB)
  std::size_t used = 0;
  while (!p.is_done()) {
    const auto n = p.put(boost::asio::buffer(wire.data() + used, wire.size() - used), ec);
    used += n;
    // Nothing taken and no error: a body cut short where the bytes end, as need_more says
    // elsewhere.
    if (ec == bhttp::error::need_more || (!ec && n == 0)) {
      ec = {};
      if (n == 0 || used >= wire.size()) {  // all of it seen: the message ends with the stream
        p.put_eof(ec);
        if (ec || !p.is_done()) return std::nullopt;
      }
      continue;
    }
    if (ec) return std::nullopt;
  }
  wire.remove_prefix(used);
  return p.release();
}

void check_response(const http::Response& res, bool head, const std::string& context) {
  const unsigned status = res.result_int();
  if (status < 100 || status > 599)
    finding("http-header", fmt::format("{}: status {}", context, status));
  check_fields(res.base(), context);
  if (status == 500 && res.body().find("internal error") != std::string::npos)
    finding("http-internal", fmt::format("{}: {}", context, res.body()));
  std::string wire;
  try {
    std::ostringstream os;
    os << res;
    wire = os.str();
  } catch (...) {
    return finding("http-splitting", fmt::format("{}: the answer does not serialise: {}", context,
                                                 describe(std::current_exception())));
  }
  // An answer to HEAD carries no content (RFC 9110 9.3.2): a client reads the next response
  // where these bytes are, so on a kept-alive connection the answers after it desynchronise.
  if (head && !res.body().empty()) {
    finding("http-head-body",
            fmt::format("{}: the answer to a HEAD request ({}) carries {} bytes of content: {:?}",
                        context, status, res.body().size(), res.body().substr(0, 100)));
    head = false;  // parse it back as what it is
  }
  std::string_view rest = wire;
  beast::error_code ec;
  auto back = parse_response(rest, head, ec);
  if (!back)
    return finding("http-splitting",
                   fmt::format("{}: the answer does not parse back: {}", context, ec.message()));
  if (!rest.empty() ||
      std::distance(back->begin(), back->end()) != std::distance(res.begin(), res.end()))
    finding("http-splitting",
            fmt::format(
                "{}: the answer parses back as {} header fields and {} more bytes, not {} fields",
                context, std::distance(back->begin(), back->end()), rest.size(),
                std::distance(res.begin(), res.end())));
}

// ---- in-process: the parser and the Api ----

void fuzz_api(std::string_view wire) {
  http::Api api(dispatcher(), shared().metrics, shared().calls, shared().callbacks, "fake");
  for (int n = 0; n < kMaxRequests && !wire.empty(); ++n) {
    bhttp::request_parser<bhttp::string_body> p;
    p.header_limit(kMaxHeader);
    p.body_limit(kMaxBody);
    p.eager(true);
    beast::error_code ec;
    std::size_t used = 0;
    while (!p.is_done()) {
      const auto got = p.put(boost::asio::buffer(wire.data() + used, wire.size() - used), ec);
      used += got;
      if (ec == bhttp::error::need_more && got > 0 && used < wire.size()) {
        ec = {};
        continue;
      }
      break;
    }
    if (!p.is_done())
      return;  // what the server answers 400, 413 or 431 (or waits for): no Api call
    wire.remove_prefix(used);
    http::Request req = p.release();
    const bool head = req.method() == bhttp::verb::head;
    const std::string context = fmt::format(
        "{} {}", std::string_view(req.method_string().data(), req.method_string().size()),
        std::string_view(req.target().data(), req.target().size()));
    int replies = 0;
    http::Response res;
    try {
      api.handle(std::move(req), [&](http::Response r) {
        ++replies;
        res = std::move(r);
      });
    } catch (...) {
      return finding("escaped", fmt::format("{}: Api::handle threw {}", context,
                                            describe(std::current_exception())));
    }
    if (replies != 1)
      return finding("http-reply", fmt::format("{}: answered {} times", context, replies));
    check_response(res, head, context);
  }
}

// ---- over a socket: the Server ----

struct Live {
  http::Api api{dispatcher(), shared().metrics, shared().calls, shared().callbacks, "fake"};
  std::unique_ptr<http::Server> server;
  Live() {
    http::ServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.max_body_bytes = kMaxBody;
    o.max_header_bytes = kMaxHeader;
    o.read_timeout = std::chrono::milliseconds(1000);
    o.idle_timeout = std::chrono::milliseconds(1000);
    server = std::make_unique<http::Server>(o, api);
    server->start();
  }
};

void fuzz_server(std::string_view wire) {
  static Live live;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(live.server->port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) !=
      0) {  // Safe: sockaddr_in as sockaddr.
    ::close(fd);
    return;
  }
  for (std::string_view s = wire; !s.empty();) {
    auto n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) break;  // the server closed (a refused request): read what it said
    s.remove_prefix(static_cast<std::size_t>(n));
  }
  ::shutdown(fd, SHUT_WR);
  std::string got;
  const auto t0 = std::chrono::steady_clock::now();
  bool timed_out = false;
  for (char buf[16384];;) {
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      got.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    timed_out = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    break;
  }
  ::close(fd);
  if (timed_out)
    finding(
        "http-hang",
        fmt::format("the server neither answered nor closed within {} ms of a half-closed request",
                    std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - t0)
                        .count()));
  // What came back is a sequence of whole responses, one per request the server read (its parser
  // is the same Beast parser, so the methods are known: HEAD's answers carry no body), each perhaps
  // after a 100 Continue.
  std::vector<bool> heads;
  for (std::string_view w = wire; heads.size() < 64 && !w.empty();) {
    bhttp::request_parser<bhttp::string_body> p;
    p.header_limit(kMaxHeader);
    p.body_limit(kMaxBody);
    p.eager(true);
    beast::error_code ec;
    std::size_t used = 0;
    while (!p.is_done()) {
      const auto got = p.put(boost::asio::buffer(w.data() + used, w.size() - used), ec);
      used += got;
      if (ec == bhttp::error::need_more && got > 0 && used < w.size()) {
        ec = {};
        continue;
      }
      break;
    }
    if (!p.is_done()) break;
    heads.push_back(p.get().method() == bhttp::verb::head);
    w.remove_prefix(used);
  }
  std::string_view rest = got;
  for (std::size_t n = 0, request = 0; !rest.empty(); ++n) {
    beast::error_code ec;
    const bool head = request < heads.size() && heads[request];
    std::string_view before = rest;
    auto res = parse_response(rest, head, ec);
    if (res && head && !rest.empty()) {
      // What follows an answer to HEAD must be the next response (itself without content when it
      // answers HEAD too); when it does not parse as one but the answer parses with content, the
      // server sent content with it (see check_response).
      std::string_view next = rest, again = before;
      const bool next_head = request + 1 < heads.size() && heads[request + 1];
      beast::error_code ec2;
      if (!parse_response(next, next_head, ec2) && parse_response(again, false, ec2)) {
        finding(
            "http-head-body",
            fmt::format("server response {}: the answer to a HEAD request carries content, which "
                        "the client reads as the next response: {:?}",
                        n, std::string(rest.substr(0, 100))));
        rest = before;
        res = parse_response(rest, false, ec);
      }
    }
    if (!res)
      return finding("http-splitting",
                     fmt::format("response {} from the server does not parse ({}): {:?}", n,
                                 ec.message(), std::string(rest.substr(0, 200))));
    if (res->result_int() >= 200) ++request;
    check_fields(res->base(), fmt::format("server response {}", n));
    if (res->result_int() == 500 && res->body().find("internal error") != std::string::npos)
      finding("http-internal", fmt::format("server response {}: {}", n, res->body()));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view wire(reinterpret_cast<const char*>(data + 1),
                              size - 1);  // Safe: input bytes as chars.
  if ((data[0] & 7) == 7)
    fuzz_server(wire);
  else
    fuzz_api(wire);
  return 0;
}
