// Outcome -> HTTP status: the table every route, the metrics and the callbacks read.
#include "src/http/outcome_status.h"

namespace unifn::http {

unsigned status_of(runtime::CallOutcome outcome) {
  using O = runtime::CallOutcome;
  switch (outcome) {
    case O::Answered:
      return 200;
    case O::NoSuchFunction:
      return 404;
    case O::TooLarge:
      return 413;
    case O::QueueFull:
      return 429;
    case O::ClientGone:
      return 499;
    case O::Failed:
      return 502;
    case O::Unavailable:
      return 503;
    case O::TimedOut:
      return 504;
    case O::HostError:
      return 500;
    case O::NotKept:
      return 507;
  }
  return 500;
}

unsigned status_of(const runtime::InvocationResult& r) {
  if (!r.answered()) return status_of(r.outcome);
  if (r.status < 200 || r.status > 599) return 502;
  return static_cast<unsigned>(r.status);
}

}  // namespace unifn::http
