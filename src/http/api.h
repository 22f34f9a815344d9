// The HTTP API as plain functions from a request to a response, testable without a socket.
#pragma once

#include <boost/beast/http.hpp>
#include <functional>
#include <string>

#include "http/calls.h"
#include "metrics/metrics.h"
#include "runtime/dispatcher.h"

namespace unifn::http {

namespace bhttp = boost::beast::http;
using Request = bhttp::request<bhttp::string_body>;
using Response = bhttp::response<bhttp::string_body>;
using Reply = std::function<void(Response)>;

// {"error": "..."} with the status; the text is JSON-escaped.
Response json_error(unsigned status, const std::string& message, unsigned version = 11);
std::string json_escape(std::string_view s);

class Api {
 public:
  Api(runtime::Dispatcher& dispatcher, metrics::Metrics& metrics, CallStore& calls, Callbacks& callbacks)
      : dispatcher_(dispatcher), metrics_(metrics), calls_(calls), callbacks_(callbacks) {}
  // Answers through reply, at once or (for invocations) from whichever thread completes the call.
  // cancelled, when given, is set by the connection if the client goes away meanwhile.
  void handle(Request req, Reply reply, std::shared_ptr<std::atomic<bool>> cancelled = nullptr);
  void set_shutting_down() { shutting_down_ = true; }

 private:
  void invoke(Request& req, const std::string& name, Reply reply, std::shared_ptr<std::atomic<bool>> cancelled);
  void invoke_async(Request& req, const std::string& name, Reply reply);
  Response call_status(const Request& req, const std::string& id, bool raw);
  Response metrics_text(const Request& req);
  runtime::Invocation make_call(Request& req, const std::string& name);
  Response functions(const Request& req) const;
  Response function(const Request& req, const std::string& name) const;
  runtime::Dispatcher& dispatcher_;
  metrics::Metrics& metrics_;
  CallStore& calls_;
  Callbacks& callbacks_;
  std::atomic<bool> shutting_down_{false};
};

}  // namespace unifn::http
