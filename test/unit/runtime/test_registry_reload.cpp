// A reload keeps a pool whose VM is unchanged and applies its new settings live; the VM identity
// that decides it (and names the snapshot); an async call reports `running` once an instance has
// it.
#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "test/unit/runtime/emulated_guest.h"
#include "src/http/api.h"
#include "src/http/calls.h"
#include "src/metrics/metrics.h"
#include "src/runtime/registry.h"
#include "vmm/snapshot/snapshot_store.h"
#include "vmm/snapshot/vm_identity.h"

using namespace unifn;
using namespace unifn::test;
using namespace std::chrono_literals;

namespace {

runtime::PoolConfig pool_config(EmulatedPlatform& platform, const std::string& name) {
  runtime::PoolConfig c;
  c.name = name;
  c.image_path = emulated_image();
  c.vm.platform = &platform;
  c.vm.memory_bytes = 8u << 20;
  c.vm.max_body_bytes = 64u << 10;
  c.settings.min_warm = 1;
  c.settings.max_instances = 2;
  c.settings.timeout = 10s;
  return c;
}

void load(runtime::Registry& registry, std::vector<runtime::PoolConfig> configs) {
  std::vector<std::string> errors;
  registry.load(std::move(configs), errors);
  REQUIRE(errors.empty());
}

runtime::InvocationResult call(runtime::Dispatcher& d, const std::string& function,
                               const std::string& body) {
  auto p = std::make_shared<std::promise<runtime::InvocationResult>>();
  auto f = p->get_future();
  runtime::Invocation c;
  c.function = function;
  c.body = body;
  d.invoke(std::move(c), [p](runtime::InvocationResult r) { p->set_value(std::move(r)); });
  REQUIRE(f.wait_for(20s) == std::future_status::ready);
  return f.get();
}

}  // namespace

// Compiles only while VmIdentity has these eight members and FunctionVmConfig these eight: a new
// one breaks the build here, and whoever adds it decides (and tests below) whether it shapes the
// VM.
TEST_CASE("every field of the VM identity changes both its equality and its snapshot key") {
  vmm::FunctionVmConfig cfg;
  [[maybe_unused]] auto& [memory_bytes, max_body_bytes, cmdline, env, init_timeout, devices,
                          device_key, platform] = cfg;
  const std::vector<std::uint8_t> bytes = {1, 2, 3}, other = {1, 2, 4};
  vmm::VmIdentity base{"kvm", bytes, 64u << 20, 6u << 20, 1, "accel:cpu", "--x", {{"A", "1"}}};
  [[maybe_unused]] auto& [p, i, m, b, d, k, c, e] = base;
  std::vector<vmm::VmIdentity> changed(8, base);
  changed[0].platform = "sandbox";
  changed[1].image = other;
  changed[2].memory_bytes = 128u << 20;
  changed[3].max_body_bytes = 1u << 20;
  changed[4].devices = 0;
  changed[5].device_key = "accel:cuda";
  changed[6].cmdline = "--y";
  changed[7].env = {{"A", "2"}};
  const auto key = vmm::SnapshotStore::key(base);
  for (std::size_t n = 0; n < changed.size(); ++n) {
    INFO("field " << n);
    CHECK(!(changed[n] == base));
    CHECK(vmm::SnapshotStore::key(changed[n]) != key);
  }
  // The same content in another buffer is the same VM.
  const std::vector<std::uint8_t> copy = bytes;
  vmm::VmIdentity same = base;
  same.image = copy;
  CHECK(same == base);
  CHECK(vmm::SnapshotStore::key(same) == key);
  // Strings and lists are framed by their lengths: moving a byte from one to the next is another
  // VM.
  vmm::VmIdentity shifted = base;
  shifted.device_key = "accel:cpu-";
  shifted.cmdline = "x";
  CHECK(vmm::SnapshotStore::key(shifted) != key);
}

TEST_CASE("a reload keeps the pool of an unchanged VM and applies its new settings live") {
  EmulatedPlatform platform;
  runtime::Registry registry;
  load(registry, {pool_config(platform, "f")});
  CHECK(call(registry, "f", "x").body == "x");
  const int booted = platform.created.load();
  REQUIRE(registry.function("f")->invocations == 1);

  // New pool settings, the same VM: the same pool (its invocations go on), no new boot, no new
  // snapshot; the new maximum and timeout hold at once.
  auto more = pool_config(platform, "f");
  more.settings.max_instances = 4;
  more.settings.timeout = 1s;
  more.settings.max_queue = 7;
  load(registry, {more});
  auto st = registry.function("f");
  REQUIRE(st);
  CHECK(st->invocations == 1);
  CHECK(st->max_instances == 4);
  CHECK(platform.created.load() == booted);
  auto slow = call(registry, "f", "sleep 3000000");
  CHECK(slow.outcome == runtime::CallOutcome::TimedOut);
  CHECK_THAT(slow.error, Catch::Contains("within 1000 ms"));

  // A higher min_warm starts instances in the live pool.
  auto warm = more;
  warm.settings.min_warm = 3;
  load(registry, {warm});
  CHECK(registry.function("f")->invocations == 2);
  for (int i = 0; i < 2000 && registry.function("f")->idle_instances < 3; ++i)
    std::this_thread::sleep_for(5ms);
  CHECK(registry.function("f")->idle_instances == 3);

  // A lower max_instances ends the idle instances above it.
  auto fewer = warm;
  fewer.settings.min_warm = 1;
  fewer.settings.max_instances = 1;
  load(registry, {fewer});
  for (int i = 0; i < 2000 && registry.function("f")->instances > 1; ++i)
    std::this_thread::sleep_for(5ms);
  CHECK(registry.function("f")->instances == 1);
  CHECK(registry.function("f")->invocations == 2);
  CHECK(call(registry, "f", "y").body == "y");

  // A change of isolation takes a new pool (the counter starts again), the VM being the same.
  auto reuse = fewer;
  reuse.settings.per_request = false;
  load(registry, {reuse});
  CHECK(registry.function("f")->invocations == 0);
  CHECK(registry.function("f")->isolation == "reuse");

  // A changed VM (its command line) takes a new pool too.
  CHECK(call(registry, "f", "z").body == "z");
  auto other = reuse;
  other.vm.cmdline = "--other";
  load(registry, {other});
  CHECK(registry.function("f")->invocations == 0);
  registry.shutdown(0ms);
}

TEST_CASE("an async call reports running once an instance has taken it, then done") {
  EmulatedPlatform platform;
  runtime::Registry registry;
  load(registry, {pool_config(platform, "f")});
  metrics::Metrics metrics;
  http::CallStore calls(100, 60s);
  http::Callbacks callbacks;
  http::Api api(registry, metrics, calls, callbacks, "fake");
  auto get = [&](const std::string& target) {
    std::optional<http::Response> out;
    api.handle(http::Request{http::bhttp::verb::get, target, 11},
               [&](http::Response r) { out = std::move(r); });
    REQUIRE(out);
    return nlohmann::json::parse(out->body());
  };

  http::Request req{http::bhttp::verb::post, "/async-function/f", 11};
  req.set("X-Call-Id", "slow-1");
  req.body() = "sleep 1500000";  // 1.5 s of work
  req.prepare_payload();
  std::optional<http::Response> accepted;
  api.handle(std::move(req), [&](http::Response r) { accepted = std::move(r); });
  REQUIRE(accepted);
  REQUIRE(accepted->result_int() == 202);

  // Polled as a client would: queued (perhaps, for a moment), then running, then done.
  std::vector<std::string> seen;
  for (int i = 0; i < 4000; ++i) {
    const std::string state = get("/v1/calls/slow-1")["state"];
    if (seen.empty() || seen.back() != state) seen.push_back(state);
    if (state == "done") break;
    std::this_thread::sleep_for(1ms);
  }
  INFO("states seen: " << fmt::format("{}", fmt::join(seen, ", ")));
  REQUIRE(!seen.empty());
  CHECK(seen.back() == "done");
  CHECK(std::find(seen.begin(), seen.end(), "running") != seen.end());
  if (seen.front() == "queued") CHECK(seen[1] == "running");
  auto done = get("/v1/calls/slow-1");
  CHECK(done["status"] == 200);
  registry.shutdown(0ms);
}
