// The functions the daemon serves, by name: the Dispatcher that the HTTP layer calls.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "src/runtime/dispatcher.h"
#include "src/runtime/instance_pool.h"

namespace unifn::runtime {

class Registry : public Dispatcher {
 public:
  // Budgets over every pool: guest memory (limits.guest_memory_mb, in bytes) and the request
  // bodies waiting in queues (limits.max_queue_bytes). The defaults are no limit.
  explicit Registry(std::uint64_t guest_memory_bytes = std::numeric_limits<std::uint64_t>::max(),
                    std::uint64_t queue_bytes = std::numeric_limits<std::uint64_t>::max());

  // Makes the set of functions exactly configs: a pool whose VM is unchanged (InstancePool::
  // same_vm) keeps serving with the new PoolSettings applied live (a change of isolation takes a
  // new pool); new functions and changed VMs get new pools (snapshotted and warmed before they
  // replace the old), removed ones drain. A function that fails to boot, or whose min_warm
  // instances do not fit in the guest memory budget after the functions before it (in the
  // order of configs), is reported through errors and left out; the others serve. While a
  // reload's new pools replace old ones, both hold memory: the budget may be passed until the
  // old ones are drained.
  void load(std::vector<PoolConfig> configs, std::vector<std::string>& errors);
  void invoke(Invocation call, Completion done) override;
  std::vector<FunctionStatus> functions() const override;
  std::optional<FunctionStatus> function(std::string_view name) const override;
  void shutdown(std::chrono::milliseconds grace);
  // The snapshot keys of the functions served now: what the state directory must keep.
  std::set<std::string> snapshot_keys() const;
  const Budget& guest_memory() const { return *memory_; }
  const Budget& queued_bytes() const { return *queue_; }

 private:
  std::shared_ptr<Budget> memory_, queue_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<InstancePool>, std::less<>> pools_;
  bool stopping_ = false;
};

}  // namespace unifn::runtime
