// A scriptable fake Dispatcher for the HTTP layer's tests, and small helpers around the Api.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <algorithm>
#include <functional>
#include <map>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "src/http/api.h"
#include "src/runtime/dispatcher.h"

namespace unifn::test {

using namespace std::chrono_literals;
using namespace std::string_literals;

inline runtime::InvocationResult ok(std::string body, std::string type = "text/plain",
                                    runtime::StartKind start = runtime::StartKind::Restored) {
  runtime::InvocationResult r;
  r.status = 200;
  r.body = std::move(body);
  r.content_type = std::move(type);
  r.start = start;
  r.duration = std::chrono::microseconds(1500);
  return r;
}

// Text the daemon did not write (a guest's error or content type, a client's path or header): a
// quote, a backslash, control bytes, DEL, NUL, UTF-8, and bytes that are not UTF-8 (a lone
// continuation byte, a truncated sequence, an overlong form, a surrogate).
inline const std::string kForeignText =
    "say \"hi\"\\ \n\r\t\x01\x1f\x7f nul\0 caf\xc3\xa9 \x80 \xe2\x82 \xc0\xaf \xed\xa0\x80 end"s;
// kForeignText as a JSON reader gets it back: the same, with each piece that is not UTF-8 as
// U+FFFD.
inline const std::string kForeignTextRead =
    "say \"hi\"\\ \n\r\t\x01\x1f\x7f nul\0 caf\xc3\xa9 \xef\xbf\xbd \xef\xbf\xbd "
    "\xef\xbf\xbd\xef\xbf\xbd "
    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end"s;

inline runtime::InvocationResult failed(runtime::CallOutcome outcome, std::string error) {
  auto r = runtime::failure(outcome, std::move(error));
  r.duration = std::chrono::milliseconds(2);
  return r;
}

// Functions by name, each with a behaviour:
//   "echo"   answers the request body with its content type at once (on the caller's thread)
//   "slow"   answers "slow done" from another thread after `slow_delay`, or early once cancelled
//   "held"   keeps the completion until release() (for queued/running states)
//   others   whatever `results[name]` says, at once
// Unknown names get the runtime's NoSuchFunction.
class FakeDispatcher : public runtime::Dispatcher {
 public:
  FakeDispatcher() {
    for (const char* n : {"echo", "slow", "held", "fail"}) add(n);
  }
  ~FakeDispatcher() override {
    release_all();
    std::vector<std::thread> ts;
    {
      std::lock_guard lock(mu_);
      ts.swap(threads_);
    }
    for (auto& t : ts) t.join();
  }

  void add(const std::string& name) {
    runtime::FunctionStatus f;
    f.name = name;
    f.image = "/usr/lib/unifn/functions/" + name + ".elf";
    f.isolation = "per-request";
    f.accel = {"cuda", "cpu"};
    f.invocations = 7;
    f.instances = 3;
    f.idle_instances = 1;
    f.max_instances = 8;
    f.queued = 2;
    f.private_memory_bytes = 5 * 4096;
    f.env = {{"MODEL", "fashion"}, {"QUOTE", "a \"b\""}};
    std::lock_guard lock(mu_);
    fns_.push_back(f);
  }
  void remove(const std::string& name) {
    std::lock_guard lock(mu_);
    std::erase_if(fns_, [&](const auto& f) { return f.name == name; });
  }

  void invoke(runtime::Invocation call, runtime::Completion done) override {
    std::unique_lock lock(mu_);
    calls_.push_back(call);
    cv_.notify_all();
    const bool known = std::any_of(fns_.begin(), fns_.end(),
                                   [&](const auto& f) { return f.name == call.function; });
    if (!known) {
      lock.unlock();
      return done(failed(runtime::CallOutcome::NoSuchFunction,
                         "no function named '" + call.function + "'"));
    }
    if (call.function == "echo") {
      lock.unlock();
      return done(ok(call.body,
                     call.content_type.empty() ? "application/octet-stream" : call.content_type));
    }
    if (call.function == "slow") {
      auto delay = slow_delay;
      threads_.emplace_back([call, done = std::move(done), delay, this] {
        auto until = std::chrono::steady_clock::now() + delay;
        while (std::chrono::steady_clock::now() < until && !call.cancelled->cancelled())
          std::this_thread::sleep_for(2ms);
        if (call.cancelled->cancelled()) ++cancelled_seen;
        done(ok("slow done"));
      });
      return;
    }
    if (call.function == "held") {
      held_.push_back(std::move(done));
      cv_.notify_all();
      return;
    }
    auto it = results.find(call.function);
    auto r = it != results.end() ? it->second : ok("?");
    lock.unlock();
    done(r);
  }

  std::vector<runtime::FunctionStatus> functions() const override {
    std::lock_guard lock(mu_);
    return fns_;
  }
  std::optional<runtime::FunctionStatus> function(std::string_view name) const override {
    std::lock_guard lock(mu_);
    for (const auto& f : fns_)
      if (f.name == name) return f;
    return std::nullopt;
  }

  // Waits (bounded) until n invocations have been seen; returns a copy of them.
  std::vector<runtime::Invocation> wait_calls(std::size_t n,
                                              std::chrono::milliseconds limit = 3000ms) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, limit, [&] { return calls_.size() >= n; });
    return calls_;
  }
  std::vector<runtime::Invocation> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  bool wait_held(std::size_t n, std::chrono::milliseconds limit = 3000ms) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return held_.size() >= n; });
  }
  // Completes the oldest held call with r.
  void release(runtime::InvocationResult r) {
    runtime::Completion done;
    {
      std::lock_guard lock(mu_);
      if (held_.empty()) return;
      done = std::move(held_.front());
      held_.erase(held_.begin());
    }
    done(std::move(r));
  }
  void release_all() {
    for (;;) {
      {
        std::lock_guard lock(mu_);
        if (held_.empty()) return;
      }
      release(failed(runtime::CallOutcome::Unavailable, "released at teardown"));
    }
  }

  std::map<std::string, runtime::InvocationResult> results;
  std::chrono::milliseconds slow_delay{300};
  std::atomic<int> cancelled_seen{0};

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<runtime::FunctionStatus> fns_;
  std::vector<runtime::Invocation> calls_;
  std::vector<runtime::Completion> held_;
  std::vector<std::thread> threads_;
};

// The callbacks' allow list of tests whose receivers listen on loopback, which the default refuses.
inline http::CallbackPolicy loopback_allowed() {
  return http::CallbackPolicy({"public", "127.0.0.0/8", "::1"});
}

// The Api and what it needs, with a fake dispatcher; members in the order they must die.
struct ApiFixture {
  metrics::Metrics metrics;
  http::CallStore calls{100, std::chrono::seconds(60)};
  http::Callbacks callbacks{[] {
    http::Callbacks::Options o;
    o.timeout = 1000ms;
    o.retry_delay = 50ms;
    o.policy = loopback_allowed();
    return o;
  }()};
  FakeDispatcher dispatcher;
  http::Api api{dispatcher, metrics, calls, callbacks, "fake"};

  // Waits (bounded) for the answer, which may come from another thread.
  http::Response call(http::Request req,
                      std::shared_ptr<runtime::CancelToken> cancelled = nullptr) {
    auto p = std::make_shared<std::promise<http::Response>>();
    auto f = p->get_future();
    api.handle(
        std::move(req), [p](http::Response r) { p->set_value(std::move(r)); },
        std::move(cancelled));
    if (f.wait_for(5s) != std::future_status::ready)
      throw std::runtime_error("no answer within 5 s");
    return f.get();
  }
  http::Response call(http::bhttp::verb method, const std::string& target, std::string body = {},
                      std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::Request req{method, target, 11};
    for (const auto& [k, v] : headers) req.set(k, v);
    req.body() = std::move(body);
    req.prepare_payload();
    return call(std::move(req));
  }
};

// 32 lowercase hex digits, like a fresh X-Call-Id.
inline bool hex32(const std::string& s) {
  return s.size() == 32 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

inline std::string header(const http::Response& r, const std::string& name) {
  auto v = r[name];
  return std::string(v.data(), v.size());
}

}  // namespace unifn::test
