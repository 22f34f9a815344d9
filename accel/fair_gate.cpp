// FairGate: a round robin of tenants over one mutex, the turn handed over directly on leave.
#include "accel/fair_gate.h"

namespace unifn::accel {

FairGate::Turn FairGate::enter(Tenant tenant) {
  std::unique_lock lock(mu_);
  if (!busy_) {  // nobody holds a turn, so nobody waits either: leave() hands turns over directly
    busy_ = true;
    return Turn(this);
  }
  const std::uint64_t ticket = next_ticket_++;
  auto& mine = queued_[tenant];
  if (mine.empty()) round_.push_back(tenant);
  mine.push_back(ticket);
  ++waiting_;
  cv_.wait(lock, [&] { return granted_ == ticket; });
  --waiting_;
  return Turn(this);
}

void FairGate::leave() {
  std::lock_guard lock(mu_);
  if (round_.empty()) {
    busy_ = false;
    return;
  }
  const Tenant next = round_.front();
  round_.pop_front();
  auto it = queued_.find(next);
  granted_ = it->second.front();
  it->second.pop_front();
  if (it->second.empty())
    queued_.erase(it);
  else
    round_.push_back(next);  // its next op waits for every other tenant's turn first
  cv_.notify_all();
}

std::size_t FairGate::waiting() const {
  std::lock_guard lock(mu_);
  return waiting_;
}

}  // namespace unifn::accel
