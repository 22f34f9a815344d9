// The HTTP API as plain functions from a request to a response, testable without a socket.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "src/http/calls.h"
#include "src/http/json.h"
#include "src/metrics/metrics.h"
#include "src/runtime/dispatcher.h"

namespace unifn::http {

namespace provider {
class Provider;
}

namespace bhttp = boost::beast::http;
using Request = bhttp::request<bhttp::string_body>;
using Response = bhttp::response<bhttp::string_body>;
// Called exactly once with the answer; for invocations, from whichever thread completed the call.
using Reply = std::function<void(Response)>;

// An answer whose body is written piece by piece as it comes (HTTP/1.1 chunked; to an HTTP/1.0
// client, delimited by the close), for GET /system/logs?follow=true. Called from any thread.
class BodyStream {
 public:
  virtual ~BodyStream() = default;
  // Queues piece to be written; false once the client has gone, the stream ended, or too much
  // waits unwritten for a client that does not read: nothing more will be written then.
  virtual bool push(std::string piece) = 0;
  // The body is complete: the rest is written, then the connection closes.
  virtual void end() = 0;
};
// Instead of Reply (never both): sends head (status and headers; its body is not sent) and returns
// the stream for the body. Given by the server to handlers that may stream; null elsewhere.
using OpenStream = std::function<std::shared_ptr<BodyStream>(Response head)>;

// {"error": "..."} with the status and Content-Type: application/json; the text is escaped.
Response json_error(unsigned status, std::string_view message, unsigned version = 11);

// doc as an application/json answer.
Response json_response(unsigned status, const Json& doc, unsigned version = 11);

// The value of key in an application/x-www-form-urlencoded query (no decoding: our keys and
// values are plain words); nullopt when the key is absent.
std::optional<std::string_view> query_param(std::string_view query, std::string_view key);
// {name} of prefix{name} or prefix{name}/; nullopt when the rest is not one path segment.
std::optional<std::string> segment(std::string_view path, std::string_view prefix);

// 32 lowercase hex digits from 128 random bits.
std::string new_call_id();
// What a client may choose as X-Call-Id: 1 to 128 of A-Z a-z 0-9 - _ . ~ : (a UUID fits), so that
// it can stand in a URL path and a header unchanged.
bool valid_call_id(std::string_view id);

// Routes (OpenFaaS-compatible):
//   POST /function/{name}            synchronous invocation
//   POST /async-function/{name}      202 and X-Call-Id; the result goes to the CallStore and to
//                                    X-Callback-Url when given
//   GET  /v1/calls/{id}[?result=raw] an async call's state and result
//   GET  /system/functions, /system/function/{name}, /system/info (envVars: the names, each value
//                                    shown as "(hidden)")
//   GET  /healthz, /metrics
//   with a Provider (http/provider/provider.h): POST/PUT/DELETE /system/functions,
//   PUT /system/images/{name}, POST /system/scale-function/{name}, GET /system/namespaces, and
//   basic auth over /system/* when it has credentials
// Every header value is written through set_field (http/header.h); a function's content type that
// is not a valid field value is answered 502 with the reason. GET routes answer HEAD too. A known
// path with a wrong method is 405 with Allow, an unknown path 404; errors are {"error": "..."}.
// Every answer to HEAD, an error's too, has no content (its Content-Length is the GET's).
class Api {
 public:
  // platform: the name /system/info reports ("kvm", "sandbox"; tests pass "fake").
  Api(runtime::Dispatcher& dispatcher, metrics::Metrics& metrics, CallStore& calls,
      Callbacks& callbacks, std::string platform)
      : dispatcher_(dispatcher),
        metrics_(metrics),
        calls_(calls),
        callbacks_(callbacks),
        platform_(std::move(platform)) {}
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  // Answers through reply, at once or later. cancelled, when given, is the flag the connection
  // sets when its client goes away; it becomes the Invocation's flag.
  // open_stream, when given, lets GET /system/logs?follow=true answer as a stream.
  void handle(Request req, Reply reply, std::shared_ptr<runtime::CancelToken> cancelled = nullptr,
              OpenStream open_stream = nullptr);

  // A request the connection refused before routing it (413): counted for the function it invoked,
  // when that function exists.
  void record_refused(std::string_view target, unsigned status);

  // The provider API's writes and basic auth over /system/* (the daemon sets it; tests may not).
  void set_provider(provider::Provider* p) { provider_ = p; }

  // From now on /healthz answers 503, so that a load balancer sends the calls elsewhere; calls that
  // still come are served (a balancer cannot safely retry a refused POST). Held log followers are
  // answered then. Server::stop calls this.
  void set_shutting_down();
  bool shutting_down() const { return shutting_down_; }

 private:
  void invoke(Request& req, std::string name, Reply reply,
              std::shared_ptr<runtime::CancelToken> cancelled);
  void invoke_async(Request& req, std::string name, Reply reply);
  Response call_status(const Request& req, const std::string& id, bool raw);
  Response metrics_text(const Request& req);
  Response functions(const Request& req) const;
  Response function(const Request& req, const std::string& name) const;
  Response info(const Request& req) const;
  bool known(std::string_view function) const;

  runtime::Dispatcher& dispatcher_;
  metrics::Metrics& metrics_;
  CallStore& calls_;
  Callbacks& callbacks_;
  const std::string platform_;
  provider::Provider* provider_ = nullptr;
  std::atomic<bool> shutting_down_{false};
  std::mutex gauges_mu_;
  std::set<std::string, std::less<>> gauged_;  // functions whose gauges /metrics last set
};

}  // namespace unifn::http
