// A real guest on each platform (kvm, sandbox): when the console sink throws on a line the guest
// wrote (as fmt::print did when the kick signal interrupted a write to a full stderr), that call
// answers 502 naming the reason, its instance is dropped, and the next call is served by a fresh one.
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstring>
#include <future>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include "guest_helpers.h"
#include "runtime/instance_pool.h"

using namespace unifn;
using namespace unifn::test;

namespace {
runtime::InvocationResult invoke(runtime::InstancePool& pool, const std::string& body, const std::string& call_id) {
  std::promise<runtime::InvocationResult> p;
  auto f = p.get_future();
  runtime::Invocation call;
  call.function = pool.config().name;
  call.body = body;
  call.call_id = call_id;
  pool.submit(std::move(call), [&p](runtime::InvocationResult r) { p.set_value(std::move(r)); });
  REQUIRE(f.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  return f.get();
}
}  // namespace

TEST_CASE("a console sink that throws on a guest's line fails that call with 502, and a fresh instance serves the next") {
  // unknown_syscall calls fork in its handler; the VMM answers ENOSYS and says so on the guest's
  // console, once per instance: every call on a fresh instance writes a console line.
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> lines;
  runtime::PoolConfig cfg;
  cfg.name = "unknown_syscall";
  cfg.image_path = guest("unknown_syscall");
  cfg.max_instances = 1;
  cfg.log = [&](const std::string&, const std::string& call, std::string_view line) {
    if (call == "boom") throw std::system_error(EINTR, std::generic_category(), "cannot write to file");
    std::lock_guard lock(mu);
    lines.emplace_back(call, std::string(line));
  };
  runtime::InstancePool pool(cfg);

  auto r = invoke(pool, "", "boom");
  CHECK(r.status == 502);
  CHECK_THAT(r.error, Catch::Contains("function unknown_syscall failed") && Catch::Contains("cannot write to file") &&
                          Catch::Contains(std::strerror(EINTR)));

  auto next = invoke(pool, "", "next");
  CHECK(next.status == 200);
  CHECK_THAT(next.body, Catch::Contains("fork: -1 errno 38"));
  CHECK(next.start == runtime::StartKind::Restored);  // a new instance, not the one whose sink threw
  std::lock_guard lock(mu);
  bool said = false;
  for (const auto& [call, line] : lines) said |= call == "next" && line.find("system call 57") != std::string::npos;
  CHECK(said);  // and its console line reached the log
}
