// A budget shared by pools: bytes of guest memory, or of request bodies waiting in queues.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>

namespace unifn::runtime {

// Thread-safe; taken when the thing is made (an instance, a queued call) and given back when it
// goes. A null budget pointer, where one is optional, means no limit.
class Budget {
 public:
  explicit Budget(std::uint64_t limit = std::numeric_limits<std::uint64_t>::max())
      : limit_(limit) {}
  Budget(const Budget&) = delete;
  Budget& operator=(const Budget&) = delete;

  // Takes n when it fits under the limit; false (nothing taken) when it does not.
  bool try_take(std::uint64_t n) noexcept;
  // Takes n even past the limit: what a reload holds twice while its new pools replace the old.
  void take(std::uint64_t n) noexcept { used_.fetch_add(n); }
  void give(std::uint64_t n) noexcept { used_.fetch_sub(n); }
  std::uint64_t used() const noexcept { return used_.load(); }
  std::uint64_t limit() const noexcept { return limit_; }
  std::uint64_t left() const noexcept;  // 0 when used is at or past the limit

 private:
  const std::uint64_t limit_;
  std::atomic<std::uint64_t> used_{0};
};

}  // namespace unifn::runtime
