// Names of start kinds and call outcomes, as headers, documents and metrics spell them.
#include "src/runtime/dispatcher.h"

namespace unifn::runtime {

std::string_view to_string(StartKind kind) {
  switch (kind) {
    case StartKind::Warm:
      return "warm";
    case StartKind::Restored:
      return "restored";
    case StartKind::Cold:
      return "cold";
  }
  return "warm";
}

std::string_view to_string(CallOutcome outcome) {
  switch (outcome) {
    case CallOutcome::Answered:
      return "answered";
    case CallOutcome::NoSuchFunction:
      return "no such function";
    case CallOutcome::TooLarge:
      return "too large";
    case CallOutcome::QueueFull:
      return "queue full";
    case CallOutcome::ClientGone:
      return "client gone";
    case CallOutcome::Failed:
      return "failed";
    case CallOutcome::Unavailable:
      return "unavailable";
    case CallOutcome::TimedOut:
      return "timed out";
    case CallOutcome::HostError:
      return "host error";
    case CallOutcome::NotKept:
      return "not kept";
  }
  return "failed";
}

bool instance_ran(CallOutcome outcome) {
  return outcome == CallOutcome::Answered || outcome == CallOutcome::Failed ||
         outcome == CallOutcome::TimedOut;
}

InvocationResult failure(CallOutcome outcome, std::string error) {
  InvocationResult r;
  r.outcome = outcome;
  r.status = 0;  // not the function's: nothing reads 200 into a failure
  r.error = std::move(error);
  return r;
}

}  // namespace unifn::runtime
