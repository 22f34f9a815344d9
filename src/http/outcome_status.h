// The one place a call's outcome becomes an HTTP status code.
#pragma once

#include <optional>
#include <string>

#include "src/runtime/dispatcher.h"

namespace unifn::http {

// 404 no such function, 413 too large, 429 queue full, 499 client gone, 502 failed, 503
// unavailable, 504 timed out, 500 host error, 507 not kept; Answered has no status of its own
// (200 here: use status_of(result)).
unsigned status_of(runtime::CallOutcome outcome);
// What the client is answered: the function's own status when it answered with a valid one
// (200 to 599), 502 for one outside that range, else status_of(outcome).
unsigned status_of(const runtime::InvocationResult& r);

// Why the function's content type cannot be sent as a header (CR, LF or another control byte);
// nullopt when it can, or when the call failed anyway.
std::optional<std::string> content_type_problem(const runtime::InvocationResult& r);
// A result whose content type cannot be a header becomes the 502 it is answered with, before it
// is counted, stored for GET /v1/calls/{id} or POSTed to a callback.
void refuse_bad_content_type(runtime::InvocationResult& r);

}  // namespace unifn::http
