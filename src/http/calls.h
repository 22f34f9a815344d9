// Async calls: a bounded store of their state and results, and callbacks that POST the results.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/http/callback_policy.h"
#include "src/runtime/dispatcher.h"

namespace unifn::http {

enum class CallState { Queued, Running, Done };
std::string_view to_string(CallState state);

struct CallRecord {
  std::string id;
  std::string function;
  CallState state = CallState::Queued;
  runtime::InvocationResult result;  // meaningful once state is Done
  // Where its X-Callback-Url delivery stands: empty when it has none, else "pending", "delivered",
  // "failed: <why>" or "refused: <why>" (a host name that resolved to addresses callbacks.allow
  // refuses).
  std::string callback;
  std::chrono::steady_clock::time_point created, finished;
};

// Bounded by entries, by bytes (records and the results they hold) and by how long a finished
// result is kept. Calls that have not finished are never evicted (their result would be lost);
// the oldest finished ones go first, to make room for a new call or a new result. A result that
// does not fit even then is kept as a 507 that says so (a callback still gets the result itself).
class CallStore {
 public:
  // Full: max_entries calls are unfinished. NoRoom: unfinished calls hold all of max_bytes.
  enum class Added { Ok, Duplicate, Full, NoRoom };
  CallStore(std::size_t max_entries, std::chrono::milliseconds ttl,
            std::size_t max_bytes = std::numeric_limits<std::size_t>::max())
      : max_(max_entries), ttl_(ttl), max_bytes_(max_bytes) {}
  Added add(const std::string& id, const std::string& function);
  void set_running(const std::string& id);
  void finish(const std::string& id, runtime::InvocationResult result);
  void set_callback(const std::string& id, std::string outcome);  // nothing when the call is gone
  std::optional<CallRecord> get(const std::string& id);           // nullopt: unknown or expired
  std::size_t size();
  std::size_t bytes();  // what the records hold now, as counted against max_bytes
  std::size_t max_bytes() const { return max_bytes_; }
  // What one record costs: its strings, its result and its bookkeeping.
  static std::size_t cost(const CallRecord& r);

 private:
  void evict_expired(std::chrono::steady_clock::time_point now);
  void evict_oldest_finished();
  std::mutex mu_;
  std::map<std::string, CallRecord, std::less<>> calls_;
  std::deque<std::string> finished_;  // ids in the order their calls finished, oldest first
  std::size_t max_;
  std::chrono::milliseconds ttl_;
  std::size_t max_bytes_;
  std::size_t bytes_ = 0;  // the cost() of every record in calls_
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
//
// Destinations pass the policy (callbacks.allow): an address literal is checked as it is; a host
// name is resolved off the callbacks' thread (a few resolver threads of their own, never an I/O
// thread), within resolve_timeout, and the connection goes only to the resolved addresses that
// passed the check, never to a second resolution. A name whose addresses are all refused is not
// retried; its outcome is "refused: <why>".
class Callbacks {
 public:
  struct Options {
    std::chrono::milliseconds timeout{5000};  // for one attempt: connect, send, read the answer
    std::chrono::milliseconds resolve_timeout{2000};  // for resolving a host name, each attempt
    std::chrono::milliseconds retry_delay{500};
    std::size_t max_pending = 1000;
    unsigned resolver_threads = 4;  // at most this many host names are resolved at once
    CallbackPolicy policy;          // default: public addresses only
    // Turns a host name into its addresses (as text), or sets error; runs on a resolver thread
    // and may block. Empty: getaddrinfo. Tests put a slow or scripted resolver here.
    std::function<std::vector<std::string>(const std::string& host, std::string& error)> resolve;
    // Where failures are reported; the daemon's logger (at warning) when empty.
    std::function<void(const std::string&)> log;
  };
  // Told once how a delivery ended: "delivered", "failed: <why>" or "refused: <why>".
  using Outcome = std::function<void(std::string)>;
  Callbacks();
  explicit Callbacks(Options options);
  ~Callbacks();  // waits up to one timeout for deliveries under way, then abandons the rest
  Callbacks(const Callbacks&) = delete;
  Callbacks& operator=(const Callbacks&) = delete;

  static bool valid_url(std::string_view url) { return CallbackUrl::parse(url).has_value(); }
  // Why the policy refuses a valid URL whose host is an address literal (for a 400 at submission);
  // nullopt for an allowed literal, a host name (checked once resolved) or an invalid URL.
  std::optional<std::string> refused_literal(std::string_view url) const;
  // The allow list from now on (a reload); deliveries already past their check keep their address.
  void set_policy(CallbackPolicy policy);
  // Never blocks. A result with error set is sent as {"error": ...} with its status. outcome, when
  // given, is called once with how the delivery ended, on the callbacks' thread (or in post() for
  // a URL it drops at once).
  void post(std::string url, std::string call_id, runtime::InvocationResult result,
            Outcome outcome = {});
  std::size_t pending() const;
  std::uint64_t delivered() const;
  std::uint64_t failed() const;

  struct Impl;  // defined in callbacks.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace unifn::http
