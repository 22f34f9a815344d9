// Instance pools under concurrency: calls from many threads, drains and registry reloads that
// retire pools, /metrics and /system/functions scrapes, all at once, on emulated guests (any host,
// and under ThreadSanitizer: scripts/test.sh runs this test in a TSan build). Every call must be
// answered exactly once, with an answer that fits what it asked, and the pools must note nothing.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "test/unit/runtime/emulated_guest.h"
#include "src/http/api.h"
#include "src/http/calls.h"
#include "src/http/outcome_status.h"
#include "src/metrics/metrics.h"
#include "src/runtime/instance_pool.h"
#include "src/runtime/registry.h"

using namespace unifn;
using namespace unifn::test;
using namespace std::chrono_literals;

namespace {

// Every call made, and how it was answered.
class Ledger {
 public:
  // A completion for one call asking `body`: it checks the answer and that it comes only once.
  std::function<void(int status, const std::string& body, const std::string& error)> expect(
      std::string asked) {
    ++made_;
    auto once = std::make_shared<std::atomic<int>>(0);
    return [this, once, asked = std::move(asked)](int status, const std::string& body,
                                                  const std::string& error) {
      if (once->fetch_add(1) != 0)
        fail(fmt::format("a call asking '{}' was answered twice ({} {})", asked, status, error));
      switch (status) {
        case 200: {
          const std::string want = asked.rfind("sleep ", 0) == 0 ? "slept"
                                   : asked == "count"            ? "1"
                                                                 : asked;
          if (body != want)
            fail(fmt::format("'{}' answered '{}' (expected '{}')", asked, body, want));
          ++ok_;
          break;
        }
        case 404:  // its function was removed by a reload
        case 429:  // its queue was full
        case 499:  // cancelled
        case 503:  // its pool was draining or the registry shutting down
          break;
        default:
          fail(fmt::format("'{}' answered {} {} {}", asked, status, body, error));
      }
      if (status == 503) ++refused_;
      ++answered_;
    };
  }
  void fail(const std::string& what) {
    std::lock_guard lock(mu_);
    if (failures_.size() < 20) failures_.push_back(what);
  }
  // Waits until every call made so far was answered (or the time is up).
  bool settle(std::chrono::seconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (answered_.load() != made_.load() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(5ms);
    return answered_.load() == made_.load();
  }
  std::vector<std::string> failures() {
    std::lock_guard lock(mu_);
    return failures_;
  }
  long made() const { return made_.load(); }
  long answered() const { return answered_.load(); }
  long ok() const { return ok_.load(); }
  long refused() const { return refused_.load(); }

 private:
  std::atomic<long> made_{0}, answered_{0}, ok_{0}, refused_{0};
  std::mutex mu_;
  std::vector<std::string> failures_;
};

runtime::PoolConfig emulated_pool(EmulatedPlatform& platform, const std::string& name, int version,
                                  unsigned max_instances,
                                  std::function<void(const std::string&)> note) {
  runtime::PoolConfig c;
  c.name = name;
  c.image_path = emulated_image();
  c.vm.platform = &platform;
  c.vm.memory_bytes = 4u << 20;
  c.vm.max_body_bytes = 64u << 10;
  c.settings.min_warm = 1;
  c.settings.max_instances = max_instances;
  c.settings.max_queue = 256;
  c.settings.timeout = 20s;  // never reached: the guests here sleep for microseconds
  c.vm.cmdline =
      fmt::format("v{}", version);  // each version is another VM: a reload replaces its pool
  // "[unifn] ..." lines mean something went wrong here (a completion threw, an instance could
  // not be restored); the guests here print nothing.
  c.log = [note = std::move(note)](const std::string& fn, const std::string& call,
                                   std::string_view line) {
    if (line.rfind("[unifn]", 0) == 0) note(fmt::format("{}[{}]: {}", fn, call, line));
  };
  return c;
}

const char* const kBodies[] = {"x", "hello", "sleep 50", "sleep 300", "count", "sleep 0"};
constexpr int kDrains = 40, kReloads = 40;

}  // namespace

TEST_CASE(
    "pool stress: calls, drains, reloads and scrapes at once answer every call exactly once") {
  EmulatedPlatform platform;
  Ledger ledger;
  std::mutex notes_mu;
  std::vector<std::string> notes;
  auto note = [&](const std::string& line) {
    std::lock_guard lock(notes_mu);
    if (notes.size() < 20) notes.push_back(line);
  };

  runtime::Registry registry;
  metrics::Metrics metrics;
  http::CallStore calls(100000, 60s);
  http::Callbacks callbacks;
  http::Api api(registry, metrics, calls, callbacks, "fake");
  std::atomic<int> version{0};
  auto configs = [&](bool with_c) {
    std::vector<runtime::PoolConfig> cs;
    const int v = ++version;
    cs.push_back(emulated_pool(platform, "a", 0, 3, note));  // never changes: keeps its pool
    cs.push_back(emulated_pool(platform, "b", v, 2, note));  // changed on every reload: retired
    if (with_c) cs.push_back(emulated_pool(platform, "c", v, 1, note));  // comes and goes
    return cs;
  };
  {
    std::vector<std::string> errors;
    registry.load(configs(true), errors);
    REQUIRE(errors.empty());
  }

  std::atomic<bool> stop{false}, stop_submitters{false};
  std::vector<std::thread> threads;
  // Callers: synchronous calls through the Api, some cancelled while they run or wait.
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      const char* fns[] = {"a", "b", "c"};
      while (!stop_submitters.load()) {
        const std::string body = kBodies[rng() % std::size(kBodies)];
        const std::string fn = fns[rng() % 3];
        auto check = ledger.expect(body);
        http::Request req{http::bhttp::verb::post, "/function/" + fn, 11};
        req.body() = body;
        req.prepare_payload();
        auto token = std::make_shared<runtime::CancelToken>();
        api.handle(
            std::move(req),
            [check](http::Response r) { check(static_cast<int>(r.result_int()), r.body(), ""); },
            token);
        if (rng() % 16 == 0) token->cancel();
        std::this_thread::sleep_for(
            std::chrono::microseconds(rng() % 300));  // leaves the drains and reloads some CPU
      }
    });
  }
  // Reloads: "b" is retired on every one (its pool drained while calls reach it), "c" removed and
  // back.
  threads.emplace_back([&] {
    for (int i = 0; !stop.load(); ++i) {
      std::vector<std::string> errors;
      registry.load(configs(i % 3 != 0), errors);
      if (!errors.empty()) ledger.fail("reload: " + errors.front());
      std::this_thread::sleep_for(2ms);
    }
  });
  // Scrapes: what /metrics and /system/functions read, while pools come and go.
  threads.emplace_back([&] {
    while (!stop.load()) {
      for (const char* path : {"/metrics", "/system/functions", "/system/function/b"}) {
        std::optional<http::Response> out;
        api.handle(http::Request{http::bhttp::verb::get, path, 11},
                   [&](http::Response r) { out = std::move(r); });
        if (!out || (out->result_int() != 200 && out->result_int() != 404))
          ledger.fail(fmt::format("GET {} failed", path));
      }
      for (const auto& f : registry.functions())
        if (f.idle_instances > f.instances)
          ledger.fail(
              fmt::format("{}: {} idle of {} instances", f.name, f.idle_instances, f.instances));
    }
  });
  // Drains under load: a pool flooded from two threads is drained at once (grace 0, as at
  // SIGTERM or when a pool is destroyed) while its workers pop and serve and the calls keep coming.
  std::atomic<int> drains{0};
  threads.emplace_back([&] {
    for (int round = 0; !stop.load(); ++round) {
      auto pool =
          std::make_shared<runtime::InstancePool>(emulated_pool(platform, "d", round, 4, note));
      std::atomic<bool> flood_done{false};
      std::vector<std::thread> flood;
      for (int t = 0; t < 2; ++t) {
        flood.emplace_back([&, t] {
          std::mt19937 rng(static_cast<unsigned>(round * 2 + t));
          for (int i = 0; i < 400 && !flood_done.load(); ++i) {
            const std::string body = i % 2 ? "sleep 20" : "x";
            auto check = ledger.expect(body);
            runtime::Invocation call;
            call.function = "d";
            call.body = body;
            pool->submit(std::move(call), [check](runtime::InvocationResult r) {
              std::this_thread::yield();  // a completion takes a moment, as an HTTP reply does
              check(static_cast<int>(http::status_of(r)), r.body, r.error);
            });
          }
        });
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200 + 100 * (round % 10)));
      pool->drain(0ms);
      ++drains;
      flood_done = true;
      for (auto& t : flood) t.join();
      pool.reset();  // the destructor drains again: a no-op now
    }
  });

  // Until enough drains and reloads happened (at least a second), or 150 s: a reload waits for the
  // calls running in the pool it retires, which under TSan on two busy cores takes a second or
  // more.
  const auto began = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - began < 150s &&
         (std::chrono::steady_clock::now() - began < 1s || drains.load() < kDrains ||
          version.load() < kReloads))
    std::this_thread::sleep_for(10ms);
  stop = true;
  for (std::size_t i = 4; i < threads.size(); ++i) threads[i].join();
  // Shut down while the callers still call: queued calls answer 503, later ones too.
  registry.shutdown(0ms);
  stop_submitters = true;
  for (std::size_t i = 0; i < 4; ++i) threads[i].join();

  CHECK(ledger.settle(60s));
  INFO("made " << ledger.made() << ", answered " << ledger.answered() << ", 200 " << ledger.ok()
               << ", 503 " << ledger.refused() << ", drains " << drains.load() << ", reloads "
               << version.load());
  for (const auto& f : ledger.failures()) FAIL_CHECK(f);
  {
    std::lock_guard lock(notes_mu);
    for (const auto& n : notes) FAIL_CHECK("the pool noted: " << n);
  }
  CHECK(ledger.answered() == ledger.made());
  CHECK(ledger.ok() > 0);
  CHECK(drains.load() >= kDrains);
  CHECK(version.load() >= kReloads);
}
