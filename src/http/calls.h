// Asynchronous calls: their state and results, kept for a bounded time and number, and callbacks.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "runtime/dispatcher.h"

namespace unifn::http {

struct CallRecord {
  std::string id;
  std::string function;
  bool done = false;
  runtime::InvocationResult result;
  std::chrono::steady_clock::time_point created, finished;
};

class CallStore {
 public:
  CallStore(std::size_t max_entries, std::chrono::seconds ttl) : max_(max_entries), ttl_(ttl) {}
  void add(const std::string& id, const std::string& function);
  void finish(const std::string& id, runtime::InvocationResult result);
  std::optional<CallRecord> get(const std::string& id);

 private:
  void evict(std::chrono::steady_clock::time_point now);
  std::mutex mu_;
  std::map<std::string, CallRecord> calls_;
  std::deque<std::string> order_;  // ids, oldest first
  std::size_t max_;
  std::chrono::seconds ttl_;
};

// POSTs results to X-Callback-Url on its own thread: never on an I/O thread, bounded timeouts,
// one retry, failures logged.
class Callbacks {
 public:
  Callbacks();
  ~Callbacks();
  // Only http://host[:port]/path URLs; returns false for anything else.
  static bool valid_url(const std::string& url);
  void post(std::string url, std::string call_id, runtime::InvocationResult result);

 private:
  struct Job {
    std::string url, call_id;
    runtime::InvocationResult result;
  };
  void run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

std::string base64(std::string_view in);

}  // namespace unifn::http
