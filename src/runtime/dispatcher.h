// The contract between the HTTP layer and the function runtime: invoke a function without blocking.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/cancel_token.h"

namespace unifn::runtime {

// How the instance that served a call was started (the X-Unifn-Start header).
enum class StartKind { Warm, Restored, Cold };
std::string_view to_string(StartKind kind);

struct Invocation {
  std::string function;      // the {name} of /function/{name}
  std::string body;          // the request body, already bounded by the HTTP layer
  std::string content_type;  // the request's Content-Type, may be empty
  std::string call_id;       // the X-Call-Id the HTTP layer assigned
  // Cancelled by the HTTP layer when the client went away: a queued call is dropped, a running
  // guest is stopped (its instance replaced) and its answer is not sent.
  std::shared_ptr<CancelToken> cancelled = std::make_shared<CancelToken>();
};

// What the runtime answers. Either the function answered (error is empty, status is the
// function's own) or the runtime failed the call (error holds a sentence for {"error": ...}
// and status is one of 404, 429, 502, 503, 504).
struct InvocationResult {
  int status = 200;
  std::string content_type;
  std::string body;
  std::string error;
  StartKind start = StartKind::Warm;
  std::chrono::nanoseconds duration{0};
};

using Completion = std::function<void(InvocationResult)>;

// What /system/functions and /system/function/{name} show about one function.
struct FunctionStatus {
  std::string name;
  std::string image;
  std::string isolation;      // "per-request" or "reuse"
  std::vector<std::string> accel;
  std::string accel_backend;  // the backend it was given, "" for none
  std::string unavailable;    // why it cannot run here (its calls answer 503), "" when it can
  std::uint64_t invocations = 0;
  unsigned instances = 0;       // instances alive (idle + busy)
  unsigned idle_instances = 0;  // ready to take a call now
  unsigned max_instances = 0;
  unsigned queued = 0;          // calls waiting for an instance
  std::vector<std::pair<std::string, std::string>> env;
};

class Dispatcher {
 public:
  virtual ~Dispatcher() = default;
  // Never blocks the calling thread; calls done exactly once, from any thread.
  virtual void invoke(Invocation call, Completion done) = 0;
  virtual std::vector<FunctionStatus> functions() const = 0;
  virtual std::optional<FunctionStatus> function(std::string_view name) const = 0;
};

}  // namespace unifn::runtime
