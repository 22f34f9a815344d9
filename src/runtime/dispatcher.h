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

#include "src/runtime/cancel_token.h"

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
  // Told on the instance's thread when an instance takes the call from the queue (async calls
  // report `running` from then on); empty: nobody asks.
  std::function<void()> on_start;
};

// How a call ended: the function answered, or why it did not. Only the HTTP layer turns these
// into status codes (http::status_of).
enum class CallOutcome {
  Answered,        // the function answered; InvocationResult::status is its own
  NoSuchFunction,  // no function by that name is served
  TooLarge,        // the request body does not fit the function's buffer; nothing was delivered
  QueueFull,       // its queue, in calls or in bytes over all queues, is full
  ClientGone,      // the client went away, so the call was dropped or stopped
  Failed,          // the instance crashed or broke the protocol, or its answer cannot be sent
  Unavailable,     // shutting down, cannot run on this machine, or no instance can be started
  TimedOut,        // the instance did not answer within the function's timeout
  HostError,       // the daemon itself could not take the call
  NotKept,         // an async result too large for the results' budget: only the reason is kept
};
std::string_view to_string(CallOutcome outcome);
// An instance ran the call: it answered, crashed or overran its deadline (X-Unifn-Start is sent).
bool instance_ran(CallOutcome outcome);

// What the runtime answers. Either the function answered (outcome Answered, error empty, status
// the function's own) or the call failed (error holds a sentence for {"error": ...}).
struct InvocationResult {
  CallOutcome outcome = CallOutcome::Answered;
  int status = 200;  // the function's own status; meaningful when outcome is Answered
  std::string content_type;
  std::string body;
  std::string error;
  StartKind start = StartKind::Warm;
  std::chrono::nanoseconds duration{0};
  bool answered() const { return outcome == CallOutcome::Answered; }
  bool instance_ran() const { return runtime::instance_ran(outcome); }
};
// A call that failed: outcome (not Answered) and the sentence saying why.
InvocationResult failure(CallOutcome outcome, std::string error);

using Completion = std::function<void(InvocationResult)>;

// What /system/functions and /system/function/{name} show about one function.
struct FunctionStatus {
  std::string name;
  std::string image;
  std::string isolation;  // "per-request" or "reuse"
  std::vector<std::string> accel;
  std::string accel_backend;  // the backend it was given, "" for none
  std::string unavailable;    // why it cannot run here (its calls answer 503), "" when it can
  std::uint64_t invocations = 0;
  unsigned instances = 0;       // instances alive (idle + busy)
  unsigned idle_instances = 0;  // ready to take a call now
  unsigned max_instances = 0;
  unsigned queued = 0;  // calls waiting for an instance
  // The guest RAM its instances hold for themselves (vmm::GuestMemory::private_bytes), summed
  // over the instances alive now and the cold-booted VM kept for a first call; 0 with none.
  std::uint64_t private_memory_bytes = 0;
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
