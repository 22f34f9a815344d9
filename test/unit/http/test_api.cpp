// The HTTP API without a socket: every route and error code, JSON, the call store, callback URLs.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "test/unit/http/fakes.h"
#include "src/http/json.h"

using namespace unifn;
using namespace unifn::test;
using http::bhttp::verb;

TEST_CASE("base64 follows RFC 4648's test vectors") {
  CHECK(http::base64_encode("") == "");
  CHECK(http::base64_encode("f") == "Zg==");
  CHECK(http::base64_encode("fo") == "Zm8=");
  CHECK(http::base64_encode("foo") == "Zm9v");
  CHECK(http::base64_encode("foob") == "Zm9vYg==");
  CHECK(http::base64_encode("fooba") == "Zm9vYmE=");
  CHECK(http::base64_encode("foobar") == "Zm9vYmFy");
  CHECK(http::base64_encode(std::string("\xff\x00\xfe", 3)) == "/wD+");
}

TEST_CASE(
    "POST /function/{name} answers the function's status, type and body with the invocation "
    "headers") {
  ApiFixture f;
  auto r = f.call(verb::post, "/function/echo", "hello", {{"Content-Type", "text/x-greeting"}});
  CHECK(r.result_int() == 200);
  CHECK(r.body() == "hello");
  CHECK(header(r, "Content-Type") == "text/x-greeting");
  CHECK(hex32(header(r, "X-Call-Id")));
  CHECK(header(r, "X-Duration-Seconds") == "0.001500");
  CHECK(header(r, "X-Unifn-Start") == "restored");
  CHECK(header(r, "Content-Length") == "5");

  auto calls = f.dispatcher.calls();
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].function == "echo");
  CHECK(calls[0].body == "hello");
  CHECK(calls[0].content_type == "text/x-greeting");
  CHECK(calls[0].call_id == header(r, "X-Call-Id"));

  // A trailing slash and a query string are accepted; the query is not the function's business.
  CHECK(f.call(verb::post, "/function/echo/", "a").body() == "a");
  CHECK(f.call(verb::post, "/function/echo?x=1&y", "b").body() == "b");
  CHECK(f.dispatcher.calls().back().function == "echo");

  // Fresh ids differ.
  CHECK(header(f.call(verb::post, "/function/echo"), "X-Call-Id") != header(r, "X-Call-Id"));
}

TEST_CASE("a client's X-Call-Id is kept, and refused when it is not a plain token") {
  ApiFixture f;
  auto r = f.call(verb::post, "/function/echo", "x",
                  {{"X-Call-Id", "3f2c9a10-aaaa-4bbb-8ccc-0123456789ab"}});
  CHECK(header(r, "X-Call-Id") == "3f2c9a10-aaaa-4bbb-8ccc-0123456789ab");
  CHECK(f.dispatcher.calls().back().call_id == "3f2c9a10-aaaa-4bbb-8ccc-0123456789ab");
  CHECK(f.call(verb::post, "/function/echo", "x", {{"X-Call-Id", "a/b"}}).result_int() == 400);
  CHECK(f.call(verb::post, "/function/echo", "x", {{"X-Call-Id", std::string(129, 'a')}})
            .result_int() == 400);
}

TEST_CASE("the connection's cancelled flag becomes the Invocation's") {
  ApiFixture f;
  auto flag = std::make_shared<runtime::CancelToken>();
  http::Request req{verb::post, "/function/echo", 11};
  f.call(std::move(req), flag);
  CHECK(f.dispatcher.calls().back().cancelled == flag);
}

TEST_CASE("runtime failures are JSON errors with honest codes") {
  ApiFixture f;
  struct Case {
    runtime::CallOutcome outcome;
    int status;
    std::string error;
  };
  using O = runtime::CallOutcome;
  for (const auto& c :
       {Case{O::QueueFull, 429, "queue full"}, Case{O::Failed, 502, "the guest aborted"},
        Case{O::Unavailable, 503, "the pool is stopping"},
        Case{O::TimedOut, 504, "the function ran past its 2000 ms deadline"}}) {
    f.dispatcher.add("f" + std::to_string(c.status));
    f.dispatcher.results["f" + std::to_string(c.status)] = failed(c.outcome, c.error);
    auto r = f.call(verb::post, "/function/f" + std::to_string(c.status));
    CHECK(static_cast<int>(r.result_int()) == c.status);
    CHECK(header(r, "Content-Type") == "application/json");
    CHECK(r.body() == "{\"error\":\"" + c.error + "\"}\n");
    CHECK(!header(r, "X-Call-Id").empty());
    CHECK(header(r, "X-Duration-Seconds") == "0.002000");
    // Only calls that an instance ran say how it started.
    CHECK(header(r, "X-Unifn-Start").empty() == (c.status == 429 || c.status == 503));
  }
  auto r = f.call(verb::post, "/function/nope");
  CHECK(r.result_int() == 404);
  CHECK(r.body() == "{\"error\":\"no function named 'nope'\"}\n");
}

TEST_CASE("a function's odd status is framed safely") {
  ApiFixture f;
  auto r204 = ok("ignored");
  r204.status = 204;
  f.dispatcher.results["fail"] = r204;
  auto r = f.call(verb::post, "/function/fail");
  CHECK(r.result_int() == 204);
  CHECK(r.body().empty());
  auto bad = ok("x");
  bad.status = 99;
  f.dispatcher.results["fail"] = bad;
  r = f.call(verb::post, "/function/fail");
  CHECK(r.result_int() == 502);
  CHECK_THAT(r.body(), Catch::Contains("invalid HTTP status 99"));
  auto untyped = ok("raw bytes", "");
  f.dispatcher.results["fail"] = untyped;
  CHECK(header(f.call(verb::post, "/function/fail"), "Content-Type") == "application/octet-stream");
}

TEST_CASE("wrong methods get 405 with Allow, unknown paths 404, both JSON") {
  ApiFixture f;
  auto r = f.call(verb::get, "/function/echo");
  CHECK(r.result_int() == 405);
  CHECK(header(r, "Allow") == "POST");
  CHECK(header(r, "Content-Type") == "application/json");
  CHECK(r.body() == "{\"error\":\"GET is not allowed on /function/echo\"}\n");
  CHECK(f.call(verb::put, "/async-function/echo").result_int() == 405);
  for (const char* path : {"/healthz", "/metrics", "/system/functions", "/system/function/echo",
                           "/system/info", "/v1/calls/abc"}) {
    auto p = f.call(verb::post, path);
    CHECK(p.result_int() == 405);
    CHECK(header(p, "Allow") == "GET, HEAD");
  }
  CHECK(f.call(verb::delete_, "/system/functions").result_int() == 405);
  for (const char* path : {"/", "/nope", "/function", "/function/", "/function/a/b",
                           "/functions/echo", "/healthz/x", "/system/function/"}) {
    auto p = f.call(verb::post, path);
    CHECK(p.result_int() == 404);
    CHECK(header(p, "Content-Type") == "application/json");
  }
  CHECK(f.dispatcher.calls().empty());
}

TEST_CASE("/healthz is OK, and 503 once shutting down, while invocations are still served") {
  ApiFixture f;
  auto r = f.call(verb::get, "/healthz");
  CHECK(r.result_int() == 200);
  CHECK(r.body() == "OK\n");
  f.api.set_shutting_down();
  auto h = f.call(verb::get, "/healthz");
  CHECK(h.result_int() == 503);
  CHECK(h.body() == "shutting down\n");
  // A balancer that still sends a call cannot retry a refused POST: it is served.
  CHECK(f.call(verb::post, "/function/echo").result_int() == 200);
  CHECK(f.call(verb::post, "/async-function/echo").result_int() == 202);
  CHECK(f.dispatcher.calls().size() == 2);
  CHECK(f.call(verb::get, "/system/functions").result_int() == 200);
}

TEST_CASE("HEAD on a GET route has the GET's headers and no body") {
  ApiFixture f;
  auto r = f.call(verb::head, "/healthz");
  CHECK(r.result_int() == 200);
  CHECK(r.body().empty());
  CHECK(header(r, "Content-Length") == "3");
}

TEST_CASE(
    "HEAD on a POST route (405) or an unknown path (404) has the error's headers and no content") {
  ApiFixture f;
  auto wrong = f.call(verb::head, "/function/echo");
  CHECK(wrong.result_int() == 405);
  CHECK(header(wrong, "Allow") == "POST");
  CHECK(wrong.body().empty());
  CHECK(header(wrong, "Content-Length") ==
        std::to_string(
            std::string("{\"error\":\"HEAD is not allowed on /function/echo\"}\n").size()));
  auto unknown = f.call(verb::head, "/nope");
  CHECK(unknown.result_int() == 404);
  CHECK(unknown.body().empty());
  CHECK(header(unknown, "Content-Length") ==
        std::to_string(f.call(verb::get, "/nope").body().size()));
  auto call = f.call(verb::head, "/v1/calls/unknown-id");
  CHECK(call.result_int() == 404);
  CHECK(call.body().empty());
  CHECK(f.dispatcher.calls().empty());
}

TEST_CASE("/system/functions and /system/function/{name} have OpenFaaS's shape") {
  ApiFixture f;
  auto r = f.call(verb::get, "/system/functions");
  CHECK(r.result_int() == 200);
  CHECK(header(r, "Content-Type") == "application/json");
  CHECK_THAT(r.body(), Catch::StartsWith("[{\"name\":\"echo\"") && Catch::EndsWith("}]\n"));
  auto one = f.call(verb::get, "/system/function/slow");
  CHECK(one.result_int() == 200);
  CHECK(one.body() ==
        "{\"name\":\"slow\",\"image\":\"/usr/lib/unifn/functions/"
        "slow.elf\",\"invocationCount\":7,\"replicas\":3,"
        "\"availableReplicas\":1,\"maxReplicas\":8,\"queued\":2,"
        "\"usage\":{\"cpu\":0.0,\"totalMemoryBytes\":20480.0},\"envVars\":{\"MODEL\":\"(hidden)"
        "\",\"QUOTE\":\"(hidden)\""
        "},\"labels\":{\"unifn.isolation\":\"per-request\"},\"annotations\":{\"unifn.accel\":"
        "\"cuda,cpu\"}}\n");
  CHECK(f.call(verb::get, "/system/function/nope").result_int() == 404);
}

TEST_CASE("/system/info names the provider, its version, the architecture and the platform") {
  ApiFixture f;
  auto r = f.call(verb::get, "/system/info");
  CHECK(r.result_int() == 200);
  CHECK(
      r.body() ==
      fmt::format(
          "{{\"provider\":{{\"provider\":\"unifn\",\"orchestration\":\"unifn\",\"version\":"
          "{{\"release\":\"{0}\",\"sha\":\"\"}}}},\"version\":{{\"release\":\"{0}\",\"sha\":\"\"}},"
          "\"arch\":\"x86_64\",\"platform\":\"fake\"}}\n",
          UNIFN_VERSION));
}

TEST_CASE("/metrics is the Prometheus text with the invocations the API answered") {
  ApiFixture f;
  f.call(verb::post, "/function/echo", "x");
  f.call(verb::post, "/function/echo", "y");
  f.dispatcher.results["fail"] = failed(runtime::CallOutcome::TimedOut, "deadline");
  f.call(verb::post, "/function/fail");
  f.call(verb::post, "/function/unknown-name");
  auto r = f.call(verb::get, "/metrics");
  CHECK(r.result_int() == 200);
  CHECK_THAT(header(r, "Content-Type"), Catch::StartsWith("text/plain; version=0.0.4"));
  const auto& t = r.body();
  CHECK_THAT(t, Catch::Contains("unifn_invocations_total{code=\"200\",function=\"echo\"} 2"));
  CHECK_THAT(t, Catch::Contains("unifn_invocations_total{code=\"504\",function=\"fail\"} 1"));
  CHECK_THAT(t, Catch::Contains("unifn_invocation_duration_seconds_count{function=\"echo\"} 2"));
  CHECK_THAT(t, Catch::Contains("unifn_starts_total{function=\"echo\",kind=\"restored\"} 2"));
  CHECK_THAT(t, Catch::Contains("unifn_queue_depth{function=\"held\"} 2"));
  CHECK_THAT(t, Catch::Contains("unifn_instances{function=\"echo\",state=\"idle\"} 1"));
  CHECK_THAT(t, Catch::Contains("unifn_instances{function=\"echo\",state=\"busy\"} 2"));
  CHECK(t.find("unknown-name") == std::string::npos);  // no series for names nobody deployed

  f.dispatcher.remove("held");
  auto after = f.call(verb::get, "/metrics").body();
  CHECK(after.find("unifn_queue_depth{function=\"held\"}") == std::string::npos);
  CHECK_THAT(after, Catch::Contains("unifn_queue_depth{function=\"echo\"} 2"));
}

TEST_CASE("async calls: 404, 400, 202, then queued and done, raw or base64, 404 for unknown ids") {
  ApiFixture f;
  CHECK(f.call(verb::post, "/async-function/nope").result_int() == 404);
  CHECK(f.call(verb::post, "/async-function/echo", "", {{"X-Callback-Url", "https://x/"}})
            .result_int() == 400);
  CHECK(f.call(verb::post, "/async-function/echo", "", {{"X-Callback-Url", "ftp://x/"}})
            .result_int() == 400);
  CHECK(f.dispatcher.calls().empty());

  auto r = f.call(verb::post, "/async-function/held", "in", {{"Content-Type", "text/plain"}});
  CHECK(r.result_int() == 202);
  auto id = header(r, "X-Call-Id");
  CHECK(hex32(id));
  CHECK(r.body() ==
        "{\"id\":\"" + id + "\",\"function\":\"held\",\"status_url\":\"/v1/calls/" + id + "\"}\n");
  REQUIRE(f.dispatcher.wait_held(1));

  auto st = f.call(verb::get, "/v1/calls/" + id);
  CHECK(st.result_int() == 200);
  CHECK(st.body() == "{\"id\":\"" + id + "\",\"function\":\"held\",\"state\":\"queued\"}\n");
  CHECK(f.call(verb::get, "/v1/calls/" + id + "?result=raw").result_int() == 202);  // not yet

  f.dispatcher.release(ok("out\n", "text/plain", runtime::StartKind::Cold));
  st = f.call(verb::get, "/v1/calls/" + id);
  CHECK(
      st.body() ==
      "{\"id\":\"" + id +
          "\",\"function\":\"held\",\"state\":\"done\",\"status\":200,\"duration_seconds\":0.0015,"
          "\"start\":\"cold\",\"content_type\":\"text/plain\",\"body_base64\":\"b3V0Cg==\"}\n");
  auto raw = f.call(verb::get, "/v1/calls/" + id + "?result=raw");
  CHECK(raw.result_int() == 200);
  CHECK(raw.body() == "out\n");
  CHECK(header(raw, "Content-Type") == "text/plain");
  CHECK(header(raw, "X-Unifn-Start") == "cold");
  CHECK(f.call(verb::get, "/v1/calls/ffff").result_int() == 404);
  CHECK_THAT(f.metrics.serialize(),
             Catch::Contains("unifn_starts_total{function=\"held\",kind=\"cold\"} 1"));

  // A failed async call shows its error.
  auto e = f.call(verb::post, "/async-function/held", "", {{"X-Call-Id", "mine-1"}});
  CHECK(header(e, "X-Call-Id") == "mine-1");
  REQUIRE(f.dispatcher.wait_held(1));
  f.dispatcher.release(failed(runtime::CallOutcome::TimedOut, "too \"slow\""));
  CHECK(f.call(verb::get, "/v1/calls/mine-1").body() ==
        "{\"id\":\"mine-1\",\"function\":\"held\",\"state\":\"done\",\"status\":504,\"duration_"
        "seconds\":0.002,"
        "\"start\":\"warm\",\"error\":\"too \\\"slow\\\"\"}\n");
  CHECK(f.call(verb::get, "/v1/calls/mine-1?result=raw").result_int() == 504);
  // The same id again is a conflict.
  CHECK(f.call(verb::post, "/async-function/echo", "", {{"X-Call-Id", "mine-1"}}).result_int() ==
        409);
}

TEST_CASE("async submissions past a store full of unfinished calls get 429") {
  metrics::Metrics m;
  http::CallStore calls(2, std::chrono::seconds(60));
  http::Callbacks callbacks;
  FakeDispatcher d;
  http::Api api(d, m, calls, callbacks, "fake");
  auto post = [&] {
    std::optional<http::Response> out;
    api.handle(http::Request{verb::post, "/async-function/held", 11},
               [&](http::Response r) { out = std::move(r); });
    return out.value().result_int();
  };
  CHECK(post() == 202);
  CHECK(post() == 202);
  CHECK(post() == 429);
  d.release(ok("done"));
  CHECK(post() == 202);  // the finished one made room
}

TEST_CASE("CallStore: bounded, finished calls evicted oldest first, results expire") {
  using runtime::InvocationResult;
  http::CallStore s(3, std::chrono::milliseconds(200));
  CHECK(s.add("a", "f") == http::CallStore::Added::Ok);
  CHECK(s.add("a", "f") == http::CallStore::Added::Duplicate);
  CHECK(s.add("b", "f") == http::CallStore::Added::Ok);
  CHECK(s.add("c", "f") == http::CallStore::Added::Ok);
  CHECK(s.add("d", "f") == http::CallStore::Added::Full);  // none finished: nothing to evict
  s.set_running("a");
  CHECK(s.get("a")->state == http::CallState::Running);
  s.finish("c", InvocationResult{});
  s.finish("b", InvocationResult{});
  CHECK(s.add("d", "f") == http::CallStore::Added::Ok);  // evicts c, the first to finish
  CHECK(!s.get("c"));
  CHECK(s.get("b")->state == http::CallState::Done);
  CHECK(s.get("a")->state == http::CallState::Running);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(!s.get("b"));                                    // expired
  CHECK(s.get("a")->state == http::CallState::Running);  // unfinished calls never expire
  CHECK(s.size() == 2);
}

TEST_CASE(
    "CallStore's byte budget: the oldest finished results make room, a result that cannot fit is a "
    "507") {
  using runtime::InvocationResult;
  const auto record = [](const std::string& id) {
    http::CallRecord r;
    r.id = id;
    r.function = "f";
    return http::CallStore::cost(r);
  };
  const std::size_t base = record("a");  // every id here is one letter
  // Three records and two results fit, not three results nor four records.
  const std::size_t result = base / 4, body = result - std::string_view("text/plain").size();
  const std::size_t budget = 3 * base + 2 * result;
  http::CallStore s(100, std::chrono::seconds(60), budget);
  REQUIRE(s.add("a", "f") == http::CallStore::Added::Ok);
  REQUIRE(s.add("b", "f") == http::CallStore::Added::Ok);
  REQUIRE(s.add("c", "f") == http::CallStore::Added::Ok);
  CHECK(s.bytes() == 3 * base);
  CHECK(s.add("d", "f") == http::CallStore::Added::NoRoom);  // unfinished calls are never evicted
  s.finish("a", test::ok(std::string(body, 'a')));
  s.finish("b", test::ok(std::string(body, 'b')));
  CHECK(s.get("a")->result.body.size() == body);
  CHECK(s.bytes() == budget);
  s.finish("c", test::ok(std::string(body, 'c')));  // a, the oldest result, makes room
  CHECK(!s.get("a"));
  CHECK(s.get("b")->result.body.size() == body);
  CHECK(s.get("c")->result.body.size() == body);
  CHECK(s.add("d", "f") == http::CallStore::Added::Ok);  // it fits beside b and c
  CHECK(s.bytes() == budget);

  // Larger than the whole budget: every older result goes, and still it is kept only as a 507.
  s.finish("d", test::ok(std::string(10 * base, 'd')));
  CHECK(!s.get("b"));
  CHECK(!s.get("c"));
  auto d = s.get("d");
  REQUIRE(d);
  CHECK(d->state == http::CallState::Done);
  CHECK(d->result.outcome == runtime::CallOutcome::NotKept);
  CHECK(d->result.body.empty());
  CHECK_THAT(d->result.error, Catch::StartsWith(fmt::format(
                                  "the result ({} bytes) does not fit in the async results' "
                                  "budget of {} bytes (limits.async_results_max_bytes)",
                                  10 * base, budget)));
  CHECK(s.bytes() <= budget);
}

TEST_CASE(
    "an async call that cannot fit in the store's byte budget is answered 429 with the reason") {
  metrics::Metrics m;
  http::CallRecord probe;
  probe.id = "x";
  probe.function = "held";
  http::CallStore calls(100, std::chrono::seconds(60), http::CallStore::cost(probe));
  http::Callbacks callbacks;
  FakeDispatcher d;
  http::Api api(d, m, calls, callbacks, "fake");
  auto post = [&](const std::string& id) {
    std::optional<http::Response> out;
    http::Request req{verb::post, "/async-function/held", 11};
    req.set("X-Call-Id", id);
    api.handle(std::move(req), [&](http::Response r) { out = std::move(r); });
    return out.value();
  };
  CHECK(post("x").result_int() == 202);
  auto refused = post("y");
  CHECK(refused.result_int() == 429);
  CHECK_THAT(
      refused.body(),
      Catch::Contains("async calls not yet finished hold the async results' whole budget of") &&
          Catch::Contains("(limits.async_results_max_bytes)"));
}

TEST_CASE("callback URLs: only http://host[:port][/path]") {
  auto u = http::CallbackUrl::parse("http://127.0.0.1:8081/hook?x=1");
  REQUIRE(u);
  CHECK(u->host == "127.0.0.1");
  CHECK(u->port == "8081");
  CHECK(u->target == "/hook?x=1");
  u = http::CallbackUrl::parse("HTTP://example.com");
  REQUIRE(u);
  CHECK(u->host == "example.com");
  CHECK(u->port == "80");
  CHECK(u->target == "/");
  u = http::CallbackUrl::parse("http://[::1]:9000/a#frag");
  REQUIRE(u);
  CHECK(u->host == "::1");
  CHECK(u->port == "9000");
  CHECK(u->target == "/a");
  for (const char* bad :
       {"https://x/", "ftp://x", "http://", "http://:80/", "http://x:/", "http://x:0/",
        "http://x:65536/", "http://x:8a/", "http://user@x/", "http://[::1/", "http://[::1]:/",
        "http://x/a b", "http://x/\r\nX: y", "x", ""})
    CHECK_FALSE(http::Callbacks::valid_url(bad));
}
