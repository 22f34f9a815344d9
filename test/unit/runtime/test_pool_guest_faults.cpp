// A real guest on each platform (kvm, sandbox): when the console sink throws on a line the guest
// wrote (as fmt::print did when the kick signal interrupted a write to a full stderr), that call
// answers 502 naming the reason, its instance is dropped, and the next call is served by a fresh
// one. A guest that floods its console is stopped at its timeout, within its log limits, while
// another function keeps serving.
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include "test/support/console_lines.h"
#include "vmm/devices/console.h"
#include "test/unit/runtime/guest_helpers.h"
#include "src/runtime/instance_pool.h"

using namespace unifn;
using namespace unifn::test;

namespace {
std::future<runtime::InvocationResult> submit(runtime::InstancePool& pool, const std::string& body,
                                              const std::string& call_id) {
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
                                 const std::string& call_id) {
  auto f = submit(pool, body, call_id);
  REQUIRE(f.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  return f.get();
}
}  // namespace

TEST_CASE(
    "a console sink that throws on a guest's line fails that call with 502, and a fresh instance "
    "serves the next") {
  // unknown_syscall calls fork in its handler; the VMM answers ENOSYS and says so on the guest's
  // console, once per instance: every call on a fresh instance writes a console line.
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> lines;
  runtime::PoolConfig cfg;
  cfg.name = "unknown_syscall";
  cfg.image_path = guest("unknown_syscall");
  cfg.settings.max_instances = 1;
  cfg.log = [&](const std::string&, const std::string& call, std::string_view line) {
    if (call == "boom")
      throw std::system_error(EINTR, std::generic_category(), "cannot write to file");
    std::lock_guard lock(mu);
    lines.emplace_back(call, std::string(line));
  };
  runtime::InstancePool pool(cfg);

  auto r = invoke(pool, "", "boom");
  CHECK(r.outcome == runtime::CallOutcome::Failed);
  CHECK_THAT(r.error, Catch::Contains("function unknown_syscall failed") &&
                          Catch::Contains("cannot write to file") &&
                          Catch::Contains(std::strerror(EINTR)));

  auto next = invoke(pool, "", "next");
  CHECK(next.status == 200);
  CHECK_THAT(next.body, Catch::Contains("fork: -1 errno 38"));
  CHECK(next.start ==
        runtime::StartKind::Restored);  // a new instance, not the one whose sink threw
  std::lock_guard lock(mu);
  bool said = false;
  for (const auto& [call, line] : lines)
    said |= call == "next" && line.find("system call 57") != std::string::npos;
  CHECK(said);  // and its console line reached the log
}

TEST_CASE(
    "a guest printing forever answers 504 at its timeout, its log within limits, while other "
    "functions keep serving") {
  std::mutex mu;
  test::ConsoleLines flooded;  // the lines of the call that floods
  auto log = [&](const std::string&, const std::string& call, std::string_view line) {
    std::lock_guard lock(mu);
    if (call == "forever") flooded.add(line);
  };
  runtime::PoolConfig flood_cfg;
  flood_cfg.name = "console_flood";
  flood_cfg.image_path = guest("console_flood");
  flood_cfg.settings.max_instances = 1;
  flood_cfg.settings.timeout = std::chrono::seconds(2);
  flood_cfg.log = log;
  runtime::InstancePool flood(flood_cfg);
  runtime::PoolConfig echo_cfg;
  echo_cfg.name = "echo";
  echo_cfg.image_path = example("echo");
  echo_cfg.settings.max_instances = 1;
  echo_cfg.log = log;
  runtime::InstancePool echo(echo_cfg);

  auto forever = submit(flood, "forever", "forever");
  // While it floods, another function answers, call after call.
  for (int i = 0; i < 20; ++i) {
    auto r = invoke(echo, "still here " + std::to_string(i), "echo-" + std::to_string(i));
    CHECK(r.status == 200);
    CHECK_THAT(r.body, Catch::Contains("still here " + std::to_string(i)));
  }
  CHECK(forever.wait_for(std::chrono::seconds(0)) ==
        std::future_status::timeout);  // the flood was still going
  REQUIRE(forever.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  auto r = forever.get();
  CHECK(r.outcome == runtime::CallOutcome::TimedOut);
  CHECK_THAT(r.error, Catch::Contains("did not answer within 2000 ms"));
  // The next call of the same function is served, by a fresh instance.
  auto next = invoke(flood, "other", "next");
  CHECK(next.status == 200);
  CHECK(next.body == "ok\n");

  std::lock_guard lock(mu);
  CHECK(flooded.said("console output over 1048576 bytes in one request") == 1);
  CHECK(flooded.guest_bytes() <= vmm::ConsoleLimits::kPerRequest + 1);
  CHECK(flooded.lines.size() <=
        vmm::ConsoleLimits::kBurstLines + 4 * vmm::ConsoleLimits::kLinesPerSecond);
}
