// Instance pools: isolation modes, queue bound, crashed instances replaced, timeouts.
#include <catch2/catch.hpp>

#include <filesystem>
#include <future>
#include <thread>

#include "test/unit/runtime/guest_helpers.h"
#include "src/runtime/instance_pool.h"

using namespace unifn;
using namespace unifn::test;

namespace {
runtime::InvocationResult invoke(runtime::InstancePool& pool, const std::string& body) {
  std::promise<runtime::InvocationResult> p;
  auto f = p.get_future();
  runtime::Invocation call;
  call.function = pool.config().name;
  call.body = body;
  pool.submit(std::move(call), [&p](runtime::InvocationResult r) { p.set_value(std::move(r)); });
  return f.get();
}

runtime::PoolConfig config(const std::string& name, const std::string& path, bool per_request) {
  runtime::PoolConfig c;
  c.name = name;
  c.image_path = path;
  c.settings.per_request = per_request;
  c.settings.max_instances = 2;
  c.settings.timeout = std::chrono::milliseconds(300);
  return c;
}
}  // namespace

TEST_CASE("a per-request pool answers counter=1 every time, a reuse pool counts") {
  runtime::InstancePool fresh(config("counter", example("counter"), true));
  for (int i = 0; i < 4; ++i) CHECK(invoke(fresh, "").body == "1\n");
  runtime::InstancePool reuse(config("counter", example("counter"), false));
  CHECK(invoke(reuse, "").body == "1\n");
  CHECK(invoke(reuse, "").body == "2\n");
}

TEST_CASE("the first call on an instance is 'restored', later ones 'warm'") {
  runtime::InstancePool pool(config("echo", example("echo"), true));
  CHECK(invoke(pool, "a").start == runtime::StartKind::Restored);
  CHECK(invoke(pool, "b").start == runtime::StartKind::Warm);
}

TEST_CASE(
    "with min_warm 0 the VM booted for the snapshot serves the first call, 'cold', later pools "
    "restore") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("unifn-cold-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  for (bool in_memory : {true, false}) {
    auto cfg = config("counter", example("counter"), true);
    cfg.settings.min_warm = 0;
    cfg.settings.max_instances = 1;
    if (!in_memory) cfg.state_dir = dir.string();
    runtime::InstancePool pool(cfg);
    auto first = invoke(pool, "");
    CHECK(first.start == runtime::StartKind::Cold);
    CHECK(first.body == "1\n");
    // Per-request isolation: the cold VM cannot be reset, so a restored one takes its place.
    auto second = invoke(pool, "");
    CHECK(second.start == runtime::StartKind::Restored);
    CHECK(second.body == "1\n");
  }
  auto cfg = config("counter", example("counter"), true);
  cfg.settings.min_warm = 0;
  cfg.state_dir = dir.string();
  runtime::InstancePool from_disk(cfg);
  CHECK(from_disk.snapshot_from_disk());
  CHECK(invoke(from_disk, "").start == runtime::StartKind::Restored);
  auto reuse = config("counter", example("counter"), false);
  reuse.settings.min_warm = 0;
  runtime::InstancePool kept(reuse);  // reuse isolation keeps the cold VM and counts on it
  CHECK(invoke(kept, "").start == runtime::StartKind::Cold);
  auto again = invoke(kept, "");
  CHECK(again.start == runtime::StartKind::Warm);
  CHECK(again.body == "2\n");
  std::filesystem::remove_all(dir);
}

TEST_CASE("crashes answer 502, timeouts 504, and the pool keeps serving") {
  runtime::InstancePool pool(config("misbehave", guest("misbehave"), true));
  auto crash = invoke(pool, "null");
  CHECK(crash.outcome == runtime::CallOutcome::Failed);
  CHECK_THAT(crash.error, Catch::Contains("page fault"));
  auto slow = invoke(pool, "loop");
  CHECK(slow.outcome == runtime::CallOutcome::TimedOut);
  auto ok = invoke(pool, "fine");
  CHECK(ok.status == 200);
  CHECK(ok.body == "ok");
}

TEST_CASE("past the queue bound calls get 429 and nothing is lost") {
  auto cfg = config("misbehave", guest("misbehave"), true);
  cfg.settings.max_instances = 1;
  cfg.settings.max_queue = 2;
  cfg.settings.timeout = std::chrono::milliseconds(200);
  runtime::InstancePool pool(cfg);
  std::vector<std::future<runtime::InvocationResult>> calls;
  std::vector<std::shared_ptr<std::promise<runtime::InvocationResult>>> ps;
  for (int i = 0; i < 6; ++i) {
    auto p = std::make_shared<std::promise<runtime::InvocationResult>>();
    calls.push_back(p->get_future());
    runtime::Invocation call;
    call.body = "loop";
    pool.submit(std::move(call), [p](runtime::InvocationResult r) { p->set_value(std::move(r)); });
  }
  int timeouts = 0, rejected = 0;
  for (auto& f : calls) {
    auto r = f.get();
    if (r.outcome == runtime::CallOutcome::TimedOut) ++timeouts;
    if (r.outcome == runtime::CallOutcome::QueueFull) ++rejected;
  }
  CHECK(timeouts + rejected == 6);
  CHECK(rejected >= 3);
}

TEST_CASE("a running call whose client went away is stopped at once and its instance replaced") {
  auto cfg = config("misbehave", guest("misbehave"), true);
  cfg.settings.max_instances = 1;
  cfg.settings.timeout =
      std::chrono::seconds(60);  // far longer than the test may take: only the cancel stops it
  runtime::InstancePool pool(cfg);
  std::promise<runtime::InvocationResult> p;
  auto f = p.get_future();
  runtime::Invocation call;
  call.function = "misbehave";
  call.body = "loop";
  auto token = call.cancelled;
  pool.submit(std::move(call), [&p](runtime::InvocationResult r) { p.set_value(std::move(r)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // it is spinning in the guest now
  token->cancel();
  REQUIRE(f.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
  auto r = f.get();
  CHECK(r.outcome == runtime::CallOutcome::ClientGone);
  CHECK_THAT(r.error, Catch::Contains("the client went away"));
  auto ok = invoke(pool, "fine");  // the one instance was replaced
  CHECK(ok.status == 200);
  CHECK(ok.body == "ok");
}
