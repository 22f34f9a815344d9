// The shedding policy as data: which connection makes room for a new one, and when one is refused.
#include <catch2/catch.hpp>

#include "src/http/connection_table.h"

using unifn::http::ConnectionTable;
using Cause = ConnectionTable::Cause;

TEST_CASE("under both caps every connection is admitted and none is shed") {
  ConnectionTable t({.total = 3, .per_client = 2});
  for (ConnectionTable::Id id : {1, 2}) {
    auto a = t.admit(id, id == 1 ? "10.0.0.1" : "10.0.0.2");
    CHECK(a.admitted);
    CHECK(!a.shed);
  }
  CHECK(t.size() == 2);
  CHECK(t.idle_count() == 2);  // fresh connections wait for their first request
}

TEST_CASE("at the total cap the connection idle longest goes, whichever client holds it") {
  ConnectionTable t({.total = 3, .per_client = 3});
  t.admit(1, "a");
  t.admit(2, "b");
  t.admit(3, "a");
  // 1 and 2 serve requests; 2 finishes first, then 1: 3 has been idle longest, then 2, then 1.
  CHECK(t.busy(1));
  CHECK(t.busy(2));
  t.idle(2);
  t.idle(1);
  auto a = t.admit(4, "c");
  CHECK(a.admitted);
  CHECK(a.shed == ConnectionTable::Id{3});
  CHECK(a.cause == Cause::Total);
  CHECK(!t.holds(3));
  CHECK(t.of("a") == 1);
  auto b = t.admit(5, "c");
  CHECK(b.shed == ConnectionTable::Id{2});  // then the next longest idle
  CHECK(t.size() == 3);
}

TEST_CASE(
    "a connection with a request under way is never shed, and with none idle the newcomer is "
    "refused") {
  ConnectionTable t({.total = 2, .per_client = 2});
  t.admit(1, "a");
  t.admit(2, "b");
  CHECK(t.busy(1));
  auto a = t.admit(3, "c");
  CHECK(a.shed == ConnectionTable::Id{2});  // not 1, although 1 came first
  CHECK(t.busy(3));
  auto refused = t.admit(4, "d");
  CHECK(!refused.admitted);
  CHECK(!refused.shed);
  CHECK(refused.cause == Cause::Total);
  CHECK(refused.refusal ==
        "unifnd holds 2 connections, each with a request under way, and may hold no more "
        "(limits.max_connections); "
        "retry shortly");
  CHECK(t.holds(1));
  CHECK(t.holds(3));
  CHECK(!t.holds(4));
}

TEST_CASE(
    "a client over its own cap sheds its own longest-idle connection, never another client's") {
  ConnectionTable t({.total = 10, .per_client = 2});
  t.admit(1, "other");  // idle longest of all
  t.admit(2, "greedy");
  t.admit(3, "greedy");
  auto a = t.admit(4, "greedy");
  CHECK(a.admitted);
  CHECK(a.shed == ConnectionTable::Id{2});
  CHECK(a.cause == Cause::PerClient);
  CHECK(t.holds(1));
  CHECK(t.of("greedy") == 2);
  CHECK(t.of("other") == 1);
}

TEST_CASE(
    "a client at its cap with every connection busy is refused, and another client still gets in") {
  ConnectionTable t({.total = 4, .per_client = 2});
  t.admit(1, "greedy");
  t.admit(2, "greedy");
  CHECK(t.busy(1));
  CHECK(t.busy(2));
  auto refused = t.admit(3, "greedy");
  CHECK(!refused.admitted);
  CHECK(refused.cause == Cause::PerClient);
  CHECK(refused.refusal ==
        "this client (greedy) already holds 2 connections, each with a request under way, and may "
        "hold no more "
        "(limits.max_connections_per_client); retry once one is answered");
  auto other = t.admit(4, "other");
  CHECK(other.admitted);
  CHECK(!other.shed);
}

TEST_CASE("with descriptors in the reserve a new connection only takes an idle one's place") {
  ConnectionTable t({.total = 100, .per_client = 100});
  t.admit(1, "a");
  t.admit(2, "b");
  CHECK(t.busy(2));
  auto a = t.admit(3, "c", true);
  CHECK(a.admitted);
  CHECK(a.shed == ConnectionTable::Id{1});
  CHECK(a.cause == Cause::Descriptors);
  CHECK(t.busy(3));
  auto refused = t.admit(4, "d", true);
  CHECK(!refused.admitted);
  CHECK(refused.cause == Cause::Descriptors);
  CHECK_THAT(refused.refusal, Catch::Contains("limits.reserved_descriptors"));
  CHECK(t.size() == 2);
}

TEST_CASE("a shed connection cannot begin a request, and removing it again is harmless") {
  ConnectionTable t({.total = 1, .per_client = 1});
  t.admit(1, "a");
  auto a = t.admit(2, "b");
  REQUIRE(a.shed == ConnectionTable::Id{1});
  CHECK(!t.busy(1));  // its bytes came too late: the server closes it unserved
  t.remove(1);
  t.idle(1);
  CHECK(t.size() == 1);
  CHECK(t.of("a") == 0);
}

TEST_CASE(
    "shed_longest_idle (accept found no descriptor) takes the longest idle, or nothing when all "
    "are busy") {
  ConnectionTable t({});
  t.admit(1, "a");
  t.admit(2, "a");
  CHECK(t.busy(1));
  CHECK(t.shed_longest_idle() == ConnectionTable::Id{2});
  CHECK(!t.shed_longest_idle());
  t.idle(1);
  CHECK(t.is_idle(1));
  CHECK(t.shed_longest_idle() == ConnectionTable::Id{1});
  CHECK(t.size() == 0);
}

TEST_CASE("a connection idle again goes to the back of the idle order") {
  ConnectionTable t({.total = 2, .per_client = 2});
  t.admit(1, "a");
  t.admit(2, "a");
  CHECK(t.busy(1));
  t.idle(1);  // 1 just answered a request: 2 has been idle longer
  CHECK(t.admit(3, "b").shed == ConnectionTable::Id{2});
}
