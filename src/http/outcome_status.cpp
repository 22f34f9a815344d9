// Outcome -> HTTP status: the table every route, the metrics and the callbacks read.
#include "src/http/outcome_status.h"

#include <fmt/format.h>

#include "src/http/header.h"

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

// Why the function's content type cannot be sent as a header (CR, LF or another control byte, which
// would inject headers or a second response); nullopt when it can, or when the call failed anyway.
std::optional<std::string> content_type_problem(const runtime::InvocationResult& r) {
  if (!r.answered()) return std::nullopt;
  auto why = field_value_problem(r.content_type);
  if (!why) return std::nullopt;
  return fmt::format("the function answered with a content type holding control bytes ({})", *why);
}

// A result whose content type cannot be a header becomes the 502 it is answered with, before it is
// counted, stored for GET /v1/calls/{id} or POSTed to a callback.
void refuse_bad_content_type(runtime::InvocationResult& r) {
  auto why = content_type_problem(r);
  if (!why) return;
  r.outcome = runtime::CallOutcome::Failed;
  r.error = std::move(*why);
  r.content_type.clear();
  r.body.clear();
}

}  // namespace unifn::http
