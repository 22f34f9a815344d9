// Turns at a resource that runs one op at a time (the GPU), shared fairly between tenants.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>

#include "accel/backend.h"

namespace unifn::accel {

// Waiters are served tenant by tenant in turn (round robin), each tenant's own in arrival order:
// a tenant with many ops queued (64 chains of one notify, or many instances) gets one turn in
// each round, so it cannot starve another. std::mutex promises no order at all, and a thread that
// releases it can take it straight back.
class FairGate {
 public:
  // The right to use the resource, until it is destroyed.
  class Turn {
   public:
    Turn(Turn&& o) noexcept : gate_(o.gate_) { o.gate_ = nullptr; }
    Turn(const Turn&) = delete;
    Turn& operator=(const Turn&) = delete;
    Turn& operator=(Turn&&) = delete;
    ~Turn() {
      if (gate_) gate_->leave();
    }

   private:
    friend class FairGate;
    explicit Turn(FairGate* g) : gate_(g) {}
    FairGate* gate_;
  };

  // Blocks until it is `tenant`'s turn.
  [[nodiscard]] Turn enter(Tenant tenant);
  // Threads waiting for a turn now (tests wait for a queue to form).
  std::size_t waiting() const;

 private:
  void leave();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool busy_ = false;
  std::uint64_t next_ticket_ = 1;
  std::uint64_t granted_ = 0;  // the ticket whose holder may go now
  std::deque<Tenant> round_;   // tenants with waiters, in the order they are served
  std::map<Tenant, std::deque<std::uint64_t>>
      queued_;  // each tenant's waiting tickets, oldest first
  std::size_t waiting_ = 0;
};

}  // namespace unifn::accel
