// The one place a call's outcome becomes an HTTP status code.
#pragma once

#include "src/runtime/dispatcher.h"

namespace unifn::http {

// 404 no such function, 413 too large, 429 queue full, 499 client gone, 502 failed, 503
// unavailable, 504 timed out, 500 host error, 507 not kept; Answered has no status of its own
// (200 here: use status_of(result)).
unsigned status_of(runtime::CallOutcome outcome);
// What the client is answered: the function's own status when it answered with a valid one
// (200 to 599), 502 for one outside that range, else status_of(outcome).
unsigned status_of(const runtime::InvocationResult& r);

}  // namespace unifn::http
