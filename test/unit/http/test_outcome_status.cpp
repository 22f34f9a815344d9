// The one table from a call's outcome to its HTTP status, and what "an instance ran" means.
#include <catch2/catch.hpp>

#include "src/http/outcome_status.h"

using namespace unifn;
using O = runtime::CallOutcome;

TEST_CASE("each outcome maps to its HTTP status") {
  struct Row {
    O outcome;
    unsigned status;
    bool instance_ran;
  };
  // Every enumerator, in order: a new outcome with no row here fails the count below.
  const Row rows[] = {{O::Answered, 200, true},     {O::NoSuchFunction, 404, false},
                      {O::TooLarge, 413, false},    {O::QueueFull, 429, false},
                      {O::ClientGone, 499, false},  {O::Failed, 502, true},
                      {O::Unavailable, 503, false}, {O::TimedOut, 504, true},
                      {O::HostError, 500, false},   {O::NotKept, 507, false}};
  STATIC_REQUIRE(std::size(rows) == static_cast<std::size_t>(O::NotKept) + 1);
  for (std::size_t i = 0; i < std::size(rows); ++i) {
    const auto& r = rows[i];
    INFO(runtime::to_string(r.outcome));
    CHECK(static_cast<std::size_t>(r.outcome) == i);
    CHECK(http::status_of(r.outcome) == r.status);
    CHECK(runtime::instance_ran(r.outcome) == r.instance_ran);
    if (r.outcome != O::Answered)
      CHECK(http::status_of(runtime::failure(r.outcome, "why")) == r.status);
  }
}

TEST_CASE("an answer carries the function's own status, or 502 when it is not one HTTP can send") {
  runtime::InvocationResult r;
  r.status = 418;
  CHECK(http::status_of(r) == 418);
  r.status = 99;
  CHECK(http::status_of(r) == 502);
  r.status = 600;
  CHECK(http::status_of(r) == 502);
  // A failure's status field is no status: nothing reads the default 200 into it.
  auto f = runtime::failure(O::Failed, "crashed");
  CHECK(!f.answered());
  CHECK(f.status == 0);
  CHECK(http::status_of(f) == 502);
}
