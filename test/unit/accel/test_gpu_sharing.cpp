// The GPU's sharing policy, without a GPU: turns between tenants (FairGate) and the scratch cap and
// trim (ScratchPool).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <thread>
#include <vector>

#include "accel/fair_gate.h"
#include "accel/scratch_pool.h"

using namespace unifn;
using accel::FairGate;
using accel::ScratchPool;

namespace {

// Threads that each wait for one turn of `tenant` and note it; started while the test holds the
// gate, each queued before the next starts, so their arrival order is known.
struct Queue {
  FairGate& gate;
  std::vector<accel::Tenant> served;  // written only inside a turn
  std::vector<std::thread> threads;
  void add(accel::Tenant tenant, int count) {
    for (int i = 0; i < count; ++i) {
      const std::size_t before = gate.waiting();
      threads.emplace_back([this, tenant] {
        const auto turn = gate.enter(tenant);
        served.push_back(tenant);
      });
      while (gate.waiting() == before) std::this_thread::yield();
    }
  }
  void join() {
    for (auto& t : threads) t.join();
  }
};

}  // namespace

TEST_CASE("the fair gate serves two tenants alternately, each in arrival order") {
  FairGate gate;
  Queue q{gate};
  {
    const auto held = gate.enter(99);
    q.add(1, 4);
    q.add(2, 2);
  }
  q.join();
  CHECK(q.served == std::vector<accel::Tenant>{1, 2, 1, 2, 1, 1});
  CHECK(gate.waiting() == 0);
}

TEST_CASE("a tenant with a long queue does not starve one that arrives after it") {
  FairGate gate;
  Queue q{gate};
  {
    const auto held = gate.enter(1);
    q.add(1, 8);  // 64 chains of one notification, or eight instances of one function
    q.add(2, 1);
  }
  q.join();
  CHECK(q.served == std::vector<accel::Tenant>{1, 2, 1, 1, 1, 1, 1, 1, 1});
  // Free again: the next turn is taken at once.
  const auto again = gate.enter(3);
  CHECK(gate.waiting() == 0);
}

namespace {

// malloc and free, counting what they did.
struct Heap {
  int allocations = 0;
  ScratchPool::Allocator allocator() {
    return {[this](std::size_t n) {
              ++allocations;
              return std::malloc(n);
            },
            [](void* p) { std::free(p); }};
  }
};

}  // namespace

TEST_CASE(
    "device scratch is capped per op, with the sizes in the reason, and nothing is allocated for a "
    "refused op") {
  Heap heap;
  ScratchPool pool(3, {.max_bytes = 3 << 20, .keep_bytes = 1 << 20}, heap.allocator());
  void* buf[3];
  const std::size_t big[] = {2 << 20, 2 << 20};
  auto r = pool.acquire(big, buf);
  CHECK_FALSE(r.ok());
  CHECK_THAT(r.message, Catch::Contains("needs 4.0 MiB of device scratch (2.0 MiB + 2.0 MiB), more "
                                        "than the 3.0 MiB one op may hold"));
  CHECK(heap.allocations == 0);
  CHECK(pool.held_bytes() == 0);
}

TEST_CASE("device scratch shrinks after a big op, and small ops reuse what stays") {
  Heap heap;
  ScratchPool pool(3, {.max_bytes = 8 << 20, .keep_bytes = 1 << 20}, heap.allocator());
  void* buf[3];
  const std::size_t big[] = {3 << 20, 3 << 20, 1 << 20};
  REQUIRE(pool.acquire(big, buf).ok());
  CHECK(pool.held_bytes() == 7 << 20);
  pool.trim();
  CHECK(pool.held_bytes() <= 1 << 20);  // the big op does not pin its buffers

  const std::size_t small[] = {300 << 10, 500 << 10};
  REQUIRE(pool.acquire(small, buf).ok());
  void* const first[] = {buf[0], buf[1]};
  pool.trim();
  const int allocations = heap.allocations;
  const std::size_t smaller[] = {200 << 10, 500 << 10};
  REQUIRE(pool.acquire(smaller, buf).ok());
  CHECK(heap.allocations == allocations);
  CHECK(buf[0] == first[0]);
  CHECK(buf[1] == first[1]);

  // What stays held counts against the cap of the next op: past it, the pool starts afresh.
  const std::size_t most[] = {0, 0, 8 << 20};
  REQUIRE(pool.acquire(most, buf).ok());
  CHECK(pool.held_bytes() == 8 << 20);
  pool.trim();
  CHECK(pool.held_bytes() == 0);
}
