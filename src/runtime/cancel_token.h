// A call's cancellation: set by the HTTP layer when the client hangs up, hooked by the runtime to
// stop the guest.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>

namespace unifn::runtime {

class CancelToken {
 public:
  // Idempotent. Runs the hook (once), if one is set.
  void cancel();
  bool cancelled() const { return flag_.load(std::memory_order_acquire); }
  // hook runs at cancel(), from the cancelling thread, or at once when already cancelled.
  void on_cancel(std::function<void()> hook);
  // Removes the hook; once it returns the hook is not running and will not run.
  void clear();

 private:
  std::atomic<bool> flag_{false};
  std::mutex mu_;
  std::function<void()> hook_;
};

}  // namespace unifn::runtime
