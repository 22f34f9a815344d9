// The one thread that may issue ptrace requests for a sandbox process (Linux ties a tracee to
// the thread that attached): every call that needs ptrace hops onto it.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

namespace unifn::vmm {

class TracerThread {
 public:
  TracerThread();
  ~TracerThread();  // runs no further jobs and joins
  TracerThread(const TracerThread&) = delete;
  TracerThread& operator=(const TracerThread&) = delete;

  // Runs job on the tracer thread and waits for it; its exception is rethrown here. One caller
  // at a time; a job's own nested calls run in place.
  void call(const std::function<void()>& job);
  // As call, but when deadline passes first, on_late runs here (once) and the wait goes on.
  void call(const std::function<void()>& job, std::chrono::steady_clock::time_point deadline,
            const std::function<void()>& on_late);
  bool on_tracer() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  void loop();
  std::mutex call_mu_;  // one caller at a time
  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void()>* job_ = nullptr;
  std::exception_ptr error_;
  bool done_ = false, quit_ = false;
  std::thread thread_;
};

}  // namespace unifn::vmm
