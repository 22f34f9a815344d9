// The budgets shared by pools: guest memory (limits.guest_memory_mb) bounds the instances, a
// function whose min_warm does not fit is skipped at load; the bytes of queued request bodies
// (limits.max_queue_bytes) bound the queues. Emulated guests (emulated_guest.h): every host.
#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "test/unit/runtime/emulated_guest.h"
#include "src/runtime/budget.h"
#include "src/runtime/instance_pool.h"
#include "src/runtime/registry.h"

using namespace unifn;
using namespace unifn::test;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t kInstance = 8u << 20;  // the memory of one emulated instance

runtime::PoolConfig emulated_pool(EmulatedPlatform& platform, const std::string& name,
                                  unsigned min_warm, unsigned max_instances) {
  runtime::PoolConfig c;
  c.name = name;
  c.image_path = emulated_image();
  c.vm.platform = &platform;
  c.vm.memory_bytes = kInstance;
  c.vm.max_body_bytes = 64u << 10;
  c.settings.min_warm = min_warm;
  c.settings.max_instances = max_instances;
  c.settings.timeout = 10s;
  return c;
}

// A call handed to submit(call, completion), and the future of its answer.
template <class Submit>
std::future<runtime::InvocationResult> call(const std::string& function, const std::string& body,
                                            Submit submit) {
  auto p = std::make_shared<std::promise<runtime::InvocationResult>>();
  auto f = p->get_future();
  runtime::Invocation c;
  c.function = function;
  c.body = body;
  submit(std::move(c), [p](runtime::InvocationResult r) { p->set_value(std::move(r)); });
  return f;
}

std::future<runtime::InvocationResult> submit(runtime::Dispatcher& d, const std::string& function,
                                              const std::string& body) {
  return call(function, body, [&d](runtime::Invocation c, runtime::Completion done) {
    d.invoke(std::move(c), std::move(done));
  });
}

std::future<runtime::InvocationResult> submit(runtime::InstancePool& pool,
                                              const std::string& body) {
  return call(pool.config().name, body, [&pool](runtime::Invocation c, runtime::Completion done) {
    pool.submit(std::move(c), std::move(done));
  });
}

// The registry's functions from now on; what load() reported.
std::vector<std::string> load(runtime::Registry& registry,
                              std::vector<runtime::PoolConfig> configs) {
  std::vector<std::string> errors;
  registry.load(std::move(configs), errors);
  return errors;
}

runtime::InvocationResult get(std::future<runtime::InvocationResult>& f) {
  REQUIRE(f.wait_for(20s) == std::future_status::ready);
  return f.get();
}

}  // namespace

TEST_CASE("Budget: try_take stops at the limit, take passes it, give returns it") {
  runtime::Budget b(100);
  CHECK(b.try_take(60));
  CHECK(!b.try_take(41));
  CHECK(b.used() == 60);
  CHECK(b.try_take(40));
  CHECK(b.left() == 0);
  b.take(10);  // a reload's overlap
  CHECK(b.used() == 110);
  CHECK(!b.try_take(0));  // past the limit, not even nothing
  b.give(110);
  CHECK(b.used() == 0);
  CHECK(b.left() == 100);
}

TEST_CASE(
    "a pool scales only as far as the guest memory budget allows and the calls past it wait and "
    "are served") {
  EmulatedPlatform platform;
  runtime::Registry registry(2 * kInstance);
  REQUIRE(load(registry, {emulated_pool(platform, "f", 1, 4)}).empty());
  CHECK(registry.guest_memory().used() == kInstance);

  std::vector<std::future<runtime::InvocationResult>> calls;
  for (int i = 0; i < 4; ++i) calls.push_back(submit(registry, "f", "sleep 100000"));
  CHECK(registry.function("f")->instances == 2);  // not 4: the budget holds two
  CHECK(registry.guest_memory().used() == 2 * kInstance);
  for (auto& c : calls) {
    auto r = get(c);
    CHECK(r.status == 200);
    CHECK(r.body == "slept");
  }
  registry.shutdown(0ms);
  CHECK(registry.guest_memory().used() == 0);  // every instance gave its memory back
}

TEST_CASE(
    "with no instance running and no room for one, a call is answered 503 naming "
    "limits.guest_memory_mb") {
  EmulatedPlatform platform;
  auto budget = std::make_shared<runtime::Budget>(kInstance / 2);
  auto cfg = emulated_pool(platform, "cold", 0, 2);
  cfg.memory_budget = budget;
  runtime::InstancePool pool(cfg);
  CHECK(budget->used() == 0);  // the booted VM was not kept: it does not fit
  auto r = submit(pool, "x");
  auto got = get(r);
  CHECK(got.outcome == runtime::CallOutcome::Unavailable);
  CHECK_THAT(got.error, Catch::Contains("function cold has no instance running") &&
                            Catch::Contains("limits.guest_memory_mb (4 MiB"));
  CHECK(pool.status().instances == 0);
}

TEST_CASE(
    "a min_warm 0 pool keeps its booted VM when it fits, and that VM's share serves its first "
    "call") {
  EmulatedPlatform platform;
  auto budget = std::make_shared<runtime::Budget>(kInstance);
  auto cfg = emulated_pool(platform, "cold", 0, 2);
  cfg.memory_budget = budget;
  {
    runtime::InstancePool pool(cfg);
    CHECK(budget->used() == kInstance);
    auto r = submit(pool, "hi");
    auto got = get(r);
    CHECK(got.status == 200);
    CHECK(got.start == runtime::StartKind::Cold);
    CHECK(budget->used() == kInstance);  // one instance, counted once
  }
  CHECK(budget->used() == 0);
}

TEST_CASE(
    "a function whose min_warm does not fit in the guest memory budget is skipped at load with a "
    "sentence") {
  EmulatedPlatform platform;
  runtime::Registry registry(3 * kInstance);
  const auto errors = load(
      registry, {emulated_pool(platform, "first", 2, 4), emulated_pool(platform, "second", 2, 2),
                 emulated_pool(platform, "third", 1, 1)});
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] ==
        "function second: min_warm 2 instances of 8 MiB need 16 MiB of guest memory, but "
        "limits.guest_memory_mb (24 "
        "MiB) leaves 8 MiB after the functions before it; skipped (lower its min_warm or "
        "memory_mb, or raise the limit)");
  CHECK(registry.function("first"));
  CHECK(!registry.function("second"));
  CHECK(registry.function("third"));
  auto f = submit(registry, "third", "still served");
  CHECK(get(f).body == "still served");
  registry.shutdown(0ms);
}

TEST_CASE(
    "queued request bodies past limits.max_queue_bytes are 429 and served ones give their bytes "
    "back") {
  EmulatedPlatform platform;
  runtime::Registry registry(std::numeric_limits<std::uint64_t>::max(), 100);
  REQUIRE(load(registry, {emulated_pool(platform, "f", 1, 1)}).empty());
  auto busy = submit(registry, "f", "sleep 300000");
  // Once the instance took it, it no longer counts as queued.
  for (int i = 0; i < 400 && registry.function("f")->queued != 0; ++i)
    std::this_thread::sleep_for(5ms);
  REQUIRE(registry.queued_bytes().used() == 0);
  auto a = submit(registry, "f", std::string(60, 'a'));
  CHECK(registry.queued_bytes().used() == 60);
  auto b = submit(registry, "f", std::string(60, 'b'));
  auto refused = get(b);
  CHECK(refused.outcome == runtime::CallOutcome::QueueFull);
  CHECK(refused.error ==
        "function f: the request bodies waiting in the queues come to 60 bytes, and this one (60 "
        "bytes) would pass "
        "limits.max_queue_bytes (100)");
  CHECK(get(busy).body == "slept");
  CHECK(get(a).body == std::string(60, 'a'));
  CHECK(registry.queued_bytes().used() == 0);
  auto c = submit(registry, "f", std::string(60, 'c'));  // room again
  CHECK(get(c).status == 200);
  registry.shutdown(0ms);
}
