// A thread that runs one job at a time for its caller: the sandbox's ptrace requests.
#include "vmm/platform/sandbox/tracer_thread.h"

#include <utility>

namespace unifn::vmm {

TracerThread::TracerThread() : thread_([this] { loop(); }) {}

TracerThread::~TracerThread() {
  {
    std::lock_guard lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void TracerThread::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return quit_ || (job_ && !done_); });
    if (quit_) return;
    const auto* job = job_;
    lock.unlock();
    std::exception_ptr error;
    try {
      (*job)();
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    error_ = error;
    done_ = true;
    cv_.notify_all();
  }
}

void TracerThread::call(const std::function<void()>& job) {
  call(job, std::chrono::steady_clock::time_point::max(), {});
}

void TracerThread::call(const std::function<void()>& job,
                        std::chrono::steady_clock::time_point deadline,
                        const std::function<void()>& on_late) {
  if (on_tracer()) {  // a handler of a job already running here
    job();
    return;
  }
  std::lock_guard one(call_mu_);
  std::unique_lock lock(mu_);
  job_ = &job;
  done_ = false;
  cv_.notify_all();
  if (deadline != std::chrono::steady_clock::time_point::max()) {
    if (!cv_.wait_until(lock, deadline, [this] { return done_; }) && on_late) {
      lock.unlock();
      on_late();
      lock.lock();
    }
  }
  cv_.wait(lock, [this] { return done_; });
  job_ = nullptr;
  if (auto e = std::exchange(error_, nullptr)) std::rethrow_exception(e);
}

}  // namespace unifn::vmm
