// A pool survives whatever throws on its vCPU threads: a console sink whose write failed, a
// platform error, a reset or a restore that fails, a completion that throws. The call at hand fails
// (502, naming the reason), its instance is dropped, and the pool, the process and every other call
// go on. Emulated guests (emulated_guest.h), so these run on every host.
#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include "test/unit/runtime/emulated_guest.h"
#include "src/runtime/instance_pool.h"

using namespace unifn;
using namespace unifn::test;
using namespace std::chrono_literals;

namespace {

runtime::PoolConfig emulated_pool(EmulatedPlatform& platform, unsigned max_instances = 1) {
  runtime::PoolConfig c;
  c.name = "emulated";
  c.image_path = emulated_image();
  c.vm.platform = &platform;
  c.vm.memory_bytes = 8u << 20;
  c.vm.max_body_bytes = 64u << 10;
  c.settings.max_instances = max_instances;
  c.settings.timeout = 10s;
  return c;
}

std::future<runtime::InvocationResult> submit(runtime::InstancePool& pool, const std::string& body,
                                              const std::string& call_id = "") {
  auto p = std::make_shared<std::promise<runtime::InvocationResult>>();
  auto f = p->get_future();
  runtime::Invocation call;
  call.function = pool.config().name;
  call.body = body;
  call.call_id = call_id;
  pool.submit(std::move(call), [p](runtime::InvocationResult r) { p->set_value(std::move(r)); });
  return f;
}

runtime::InvocationResult invoke(runtime::InstancePool& pool, const std::string& body,
                                 const std::string& call_id = "") {
  auto f = submit(pool, body, call_id);
  REQUIRE(f.wait_for(20s) == std::future_status::ready);
  return f.get();
}

// What reached the log: (call id, line).
struct Log {
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> lines;
  void add(const std::string& call, std::string_view line) {
    std::lock_guard lock(mu);
    lines.emplace_back(call, std::string(line));
  }
  bool has(const std::string& call, const std::string& part) {
    std::lock_guard lock(mu);
    for (const auto& [c, l] : lines)
      if (c == call && l.find(part) != std::string::npos) return true;
    return false;
  }
};

}  // namespace

TEST_CASE(
    "a console sink that throws fails that call with 502 naming why, and a fresh instance serves "
    "the next") {
  EmulatedPlatform platform;
  Log log;
  auto cfg = emulated_pool(platform);
  // As the daemon's old sink did when the kick signal interrupted its blocked write to stderr.
  cfg.log = [&log](const std::string&, const std::string& call, std::string_view line) {
    if (call == "boom")
      throw std::system_error(EINTR, std::generic_category(), "cannot write to file");
    log.add(call, line);
  };
  runtime::InstancePool pool(cfg);
  CHECK(invoke(pool, "x", "first").body == "x");
  const int machines = platform.created.load();

  auto r = invoke(pool, "print hello", "boom");
  CHECK(r.outcome == runtime::CallOutcome::Failed);
  CHECK_THAT(r.error, Catch::Contains("function emulated failed") &&
                          Catch::Contains("cannot write to file") &&
                          Catch::Contains(std::strerror(EINTR)));

  auto next = invoke(pool, "print again", "next");
  CHECK(next.status == 200);
  CHECK(next.body == "printed");
  CHECK(next.start == runtime::StartKind::Restored);  // not the instance that threw: a new one
  CHECK(platform.created.load() == machines + 1);
  CHECK(log.has("next", "again"));
  CHECK(pool.status().instances == 1);
}

TEST_CASE(
    "an exception from the platform on the vCPU path, std or not, fails the call with 502 and the "
    "pool goes on") {
  EmulatedPlatform platform;
  runtime::InstancePool pool(emulated_pool(platform, 2));
  auto sys = invoke(pool, "throw");
  CHECK(sys.outcome == runtime::CallOutcome::Failed);
  CHECK_THAT(sys.error, Catch::Contains("the emulated vCPU failed"));
  auto other = invoke(pool, "throw-int");
  CHECK(other.outcome == runtime::CallOutcome::Failed);
  CHECK_THAT(other.error, Catch::Contains("not a std::exception"));
  auto ok = invoke(pool, "count");
  CHECK(ok.status == 200);
  CHECK(ok.body == "1");
  CHECK(ok.start == runtime::StartKind::Restored);
  CHECK(pool.status().invocations == 3);
}

TEST_CASE(
    "a reset that throws drops the instance after its call was answered, and the next call gets a "
    "new one") {
  EmulatedPlatform platform;
  Log log;
  auto cfg = emulated_pool(platform);
  cfg.log = [&log](const std::string&, const std::string& call, std::string_view line) {
    log.add(call, line);
    throw std::runtime_error(
        "the log is broken too");  // the pool's own note must not end the worker
  };
  runtime::InstancePool pool(cfg);
  CHECK(invoke(pool, "x").status == 200);  // the warm instance is up
  const int machines = platform.created.load();
  platform.fail_applies = 1;
  auto r = invoke(pool, "y", "reset-fails");
  CHECK(r.status == 200);
  CHECK(r.body == "y");
  CHECK(log.has("reset-fails", "reset failed"));
  auto next = invoke(pool, "count");
  CHECK(next.status == 200);
  CHECK(next.body == "1");
  CHECK(next.start == runtime::StartKind::Restored);
  CHECK(platform.created.load() == machines + 1);
}

TEST_CASE(
    "a restore that fails (with a log that throws) answers the waiting calls 503, and later calls "
    "are served") {
  EmulatedPlatform platform;
  Log log;
  auto cfg = emulated_pool(platform);
  cfg.log = [&log](const std::string&, const std::string& call, std::string_view line) {
    log.add(call, line);
    throw std::runtime_error("the log is broken too");
  };
  runtime::InstancePool pool(cfg);
  CHECK(invoke(pool, "x").status == 200);
  platform.fail_creates = true;
  auto crash = submit(pool, "crash");  // its instance is dropped, and no new one can be made
  auto waiting = submit(pool, "x");
  REQUIRE(crash.wait_for(20s) == std::future_status::ready);
  CHECK(crash.get().outcome == runtime::CallOutcome::Failed);
  REQUIRE(waiting.wait_for(20s) == std::future_status::ready);  // not stranded in the queue
  auto w = waiting.get();
  CHECK(w.outcome == runtime::CallOutcome::Unavailable);
  CHECK_THAT(w.error, Catch::Contains("no instance could be started") &&
                          Catch::Contains("the emulated platform was told to refuse new machines"));
  CHECK(log.has("", "cannot restore an instance"));
  CHECK(pool.status().instances == 0);
  platform.fail_creates = false;
  auto later = invoke(pool, "later");
  CHECK(later.status == 200);
  CHECK(later.body == "later");
}

TEST_CASE("a completion that throws is noted and the worker serves on") {
  EmulatedPlatform platform;
  Log log;
  auto cfg = emulated_pool(platform);
  cfg.log = [&log](const std::string&, const std::string& call, std::string_view line) {
    log.add(call, line);
  };
  runtime::InstancePool pool(cfg);
  runtime::Invocation call;
  call.body = "x";
  call.call_id = "thrower";
  pool.submit(std::move(call), [](runtime::InvocationResult) {
    throw std::runtime_error("the caller's completion broke");
  });
  auto next = invoke(pool, "count");  // one worker: it took the throwing completion first
  CHECK(next.status == 200);
  CHECK(next.body == "1");
  CHECK(log.has("thrower", "the caller's completion broke"));
}

TEST_CASE("drain answers the queued calls 503 once each, even while a worker comes back for more") {
  EmulatedPlatform platform;
  runtime::InstancePool pool(emulated_pool(platform, 1));
  CHECK(invoke(pool, "x").status == 200);  // the one instance is up
  std::promise<void> ran;
  auto ran_done = ran.get_future().share();
  auto running = std::make_shared<std::promise<runtime::InvocationResult>>();
  auto running_answer = running->get_future();
  {
    runtime::Invocation call;
    call.body = "sleep 20000";
    pool.submit(std::move(call), [running, &ran](runtime::InvocationResult r) {
      running->set_value(std::move(r));
      ran.set_value();
    });
  }
  while (pool.status().queued != 0) std::this_thread::sleep_for(100us);  // it runs now
  std::mutex mu;
  std::vector<int> answers(20, 0);
  std::vector<runtime::CallOutcome> statuses(20, runtime::CallOutcome::Answered);
  for (int i = 0; i < 20; ++i) {
    runtime::Invocation call;
    call.body = "x";
    pool.submit(std::move(call), [&, i, ran_done](runtime::InvocationResult r) {
      if (i == 0) {
        // The first 503 waits, on drain's thread, until the worker is done with the running call
        // and back for the next: with the queue walked unlocked, it would pop a call whose
        // completion drain had already taken (and call an empty std::function).
        ran_done.wait_for(10s);
        std::this_thread::sleep_for(20ms);
      }
      std::lock_guard lock(mu);
      ++answers[static_cast<std::size_t>(i)];
      statuses[static_cast<std::size_t>(i)] = r.outcome;
    });
  }
  CHECK(pool.status().queued == 20);
  pool.drain(0ms);
  REQUIRE(running_answer.wait_for(0s) == std::future_status::ready);
  CHECK(running_answer.get().body == "slept");
  std::lock_guard lock(mu);
  for (int i = 0; i < 20; ++i) {
    INFO("call " << i);
    CHECK(answers[static_cast<std::size_t>(i)] == 1);
    CHECK(statuses[static_cast<std::size_t>(i)] == runtime::CallOutcome::Unavailable);
  }
  CHECK(invoke(pool, "x").outcome == runtime::CallOutcome::Unavailable);
  pool.drain(0ms);  // again: a no-op
}
