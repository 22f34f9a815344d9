// Async calls: a bounded store of their state and results, and callbacks that POST the results.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/dispatcher.h"

namespace unifn::http {

enum class CallState { Queued, Running, Done };
std::string_view to_string(CallState state);

struct CallRecord {
  std::string id;
  std::string function;
  CallState state = CallState::Queued;
  runtime::InvocationResult result;  // meaningful once state is Done
  std::chrono::steady_clock::time_point created, finished;
};

// Bounded by entries and by how long a finished result is kept. Calls that have not finished are
// never evicted (their result would be lost); the oldest finished ones go first.
class CallStore {
 public:
  enum class Added { Ok, Duplicate, Full };
  CallStore(std::size_t max_entries, std::chrono::milliseconds ttl) : max_(max_entries), ttl_(ttl) {}
  Added add(const std::string& id, const std::string& function);
  void set_running(const std::string& id);
  void finish(const std::string& id, runtime::InvocationResult result);
  std::optional<CallRecord> get(const std::string& id);  // nullopt: unknown or expired
  std::size_t size();

 private:
  void evict_expired(std::chrono::steady_clock::time_point now);
  std::mutex mu_;
  std::map<std::string, CallRecord, std::less<>> calls_;
  std::deque<std::string> finished_;  // ids in the order their calls finished, oldest first
  std::size_t max_;
  std::chrono::milliseconds ttl_;
};

// Where a callback goes: only plain http:// URLs.
struct CallbackUrl {
  std::string host;  // a name, an IPv4 address or an IPv6 address without its brackets
  std::string port;  // "80" when the URL names none
  std::string target;
  static std::optional<CallbackUrl> parse(std::string_view url);
};

// POSTs results to X-Callback-Url with a Beast asynchronous client on its own thread, so that a
// slow or dead receiver never holds an I/O thread nor another callback. Each delivery has a
// timeout and at most one retry; failures are logged; past max_pending deliveries are dropped
// (and logged) so that a dead receiver cannot grow memory without bound.
class Callbacks {
 public:
  struct Options {
    std::chrono::milliseconds timeout{5000};  // for one attempt: resolve, connect, send, read answer
    std::chrono::milliseconds retry_delay{500};
    std::size_t max_pending = 1000;
    // Where failures are reported; stderr when empty.
    std::function<void(const std::string&)> log;
  };
  Callbacks();
  explicit Callbacks(Options options);
  ~Callbacks();  // waits up to one timeout for deliveries under way, then abandons the rest
  Callbacks(const Callbacks&) = delete;
  Callbacks& operator=(const Callbacks&) = delete;

  static bool valid_url(std::string_view url) { return CallbackUrl::parse(url).has_value(); }
  // Never blocks. A result with error set is sent as {"error": ...} with its status.
  void post(std::string url, std::string call_id, runtime::InvocationResult result);
  std::size_t pending() const;
  std::uint64_t delivered() const;
  std::uint64_t failed() const;

  struct Impl;  // defined in callbacks.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace unifn::http
