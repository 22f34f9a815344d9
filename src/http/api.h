// The HTTP API as plain functions from a request to a response, testable without a socket.
#pragma once

#include <boost/beast/http.hpp>
#include <functional>
#include <string>

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
  explicit Api(runtime::Dispatcher& dispatcher) : dispatcher_(dispatcher) {}
  // Answers through reply, at once or (for invocations) from whichever thread completes the call.
  void handle(Request req, Reply reply);
  void set_shutting_down() { shutting_down_ = true; }

 private:
  void invoke(Request& req, const std::string& name, Reply reply);
  Response functions(const Request& req) const;
  Response function(const Request& req, const std::string& name) const;
  runtime::Dispatcher& dispatcher_;
  std::atomic<bool> shutting_down_{false};
};

}  // namespace unifn::http
