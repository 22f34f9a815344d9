// The instances of one function: restored from its snapshot, fed from a bounded queue by vCPU
// threads.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vmm/guest/function_vm.h"
#include "src/runtime/budget.h"
#include "src/runtime/dispatcher.h"

namespace unifn::runtime {

// How a pool serves its function: what a reload applies to a live pool (InstancePool::apply),
// with no new snapshot. Everything the VM itself is made of is in PoolConfig::vm instead.
struct PoolSettings {
  unsigned min_warm = 1;
  unsigned max_instances = 4;
  bool per_request = true;  // isolation: per-request (reset after each call) or reuse
  std::chrono::milliseconds timeout{5000};
  std::size_t max_queue = 1024;
  bool operator==(const PoolSettings&) const = default;
};

struct PoolConfig {
  std::string name;
  std::string image_path;
  vmm::FunctionVmConfig vm;  // with the image's content: its vmm::VmIdentity
  PoolSettings settings;
  // Shared with the other pools (the Registry sets them; null: no limit). memory: guest RAM,
  // vm.memory_bytes per instance (limits.guest_memory_mb); queue: the bytes of request bodies
  // waiting in every queue (limits.max_queue_bytes).
  std::shared_ptr<Budget> memory_budget;
  std::shared_ptr<Budget> queue_budget;
  std::string state_dir;           // snapshots are kept there; empty: in memory only
  std::vector<std::string> accel;  // as the drop-in lists them (shown in the status)
  std::string accel_backend;       // the backend its virtio-accel device runs on, "" for none
  // Set when the function cannot run on this machine (a cuda-only function with no GPU): nothing
  // is booted and every call answers 503 with this sentence.
  std::string unavailable;
  // Told once how the snapshot was had: loaded from disk (true) or built by a cold boot.
  std::function<void(bool from_disk)> on_snapshot;
  // Where console lines of the guest go: (function, call id, line). It is called on the vCPU thread
  // of the instance: an exception it throws for a guest's line fails that call (502, naming the
  // exception) and drops the instance; one it throws for the pool's own notes is ignored.
  std::function<void(const std::string&, const std::string&, std::string_view)> log;
};

class InstancePool {
 public:
  // Boots the function cold once, snapshots it, and restores min_warm instances; throws
  // (ImageError, BootError) when the image cannot be booted. With cfg.unavailable set it boots
  // nothing and answers every call 503. The min_warm instances take their memory even past the
  // budget (the Registry checked that they fit once a reload's old pools are gone); the booted VM
  // kept for a first cold call (min_warm 0) only when it fits.
  explicit InstancePool(PoolConfig cfg);
  ~InstancePool();  // drains: queued calls get 503, running ones finish
  InstancePool(const InstancePool&) = delete;
  InstancePool& operator=(const InstancePool&) = delete;

  // Never blocks: queues the call, or completes it at once with 429 when the queue is full (in
  // calls, or in bytes over all queues). A call that would need another instance where the
  // memory budget has no room waits for a running one; with none running it is answered 503.
  void submit(Invocation call, Completion done);
  // Stops taking calls; waits up to grace for running and queued calls to finish. The calls still
  // queued then are taken out under the lock at once and answered 503 here (no worker can pop
  // them any more); running calls finish and their workers end. Safe while other threads submit,
  // read status() or drain too; every drain returns once all workers have ended.
  void drain(std::chrono::milliseconds grace);
  FunctionStatus status() const;
  // name, vm and state_dir are fixed at construction; settings, image_path and accel change under
  // mu_ (apply()), so read those through status().
  const PoolConfig& config() const { return cfg_; }
  // Whether next runs the same VM as this pool (equal vmm::VmIdentity, its image read from
  // next.image_path; both unavailable for the same reason counts too), so that a reload can keep
  // this pool and apply next's settings to it.
  bool same_vm(const PoolConfig& next) const;
  // Whether apply() can take these settings live: all but a change of isolation, which would
  // leave instances that served under one rule serving under the other.
  bool can_apply(const PoolSettings& next) const;
  // The new settings, live: later calls take the new timeout and queue bound; a higher min_warm
  // starts instances (as far as the memory budget allows), a lower max_instances ends idle
  // instances above it. The image path and accel list shown in status() are taken too.
  void apply(const PoolConfig& next);
  bool snapshot_from_disk() const { return snapshot_from_disk_; }
  // The name of its snapshot in the state directory; empty when it keeps none there.
  const std::string& snapshot_key() const { return snapshot_key_; }

 private:
  struct Job {
    Invocation call;
    Completion done;
    std::chrono::steady_clock::time_point queued;
  };
  void worker();
  // Hands r to the caller; a completion that throws is noted, never let out of a worker.
  void complete(Job& job, InvocationResult r) noexcept;
  // The jobs that will never be served: answered with outcome and error, outside the lock.
  void fail_all(std::deque<Job> jobs, CallOutcome outcome, const std::string& error) noexcept;
  // tag: the call id the instance serves now, for its console lines.
  std::unique_ptr<vmm::FunctionVm> fresh_instance(std::shared_ptr<const std::string> tag);
  InvocationResult serve(vmm::FunctionVm& vm, Job& job, StartKind start,
                         std::chrono::milliseconds timeout);
  // Budgets: a job leaving the queue gives back its body's bytes; an instance ending its memory.
  void unqueued(const Job& job) noexcept;
  void unqueued(const std::deque<Job>& jobs) noexcept;
  void instance_ended() noexcept;  // under mu_, with --instances_
  void start_worker();             // under mu_: one more instance, counted as starting
  // An instance's VM comes alive in a worker (alive) or is about to be destroyed: status() sums
  // the memory of those alive.
  void track(const vmm::FunctionVm* vm, bool alive);

  PoolConfig cfg_;
  std::shared_ptr<const vmm::FunctionImage> image_;
  std::shared_ptr<const vmm::Snapshot> snapshot_;
  std::unique_ptr<vmm::FunctionVm> cold_;
  bool snapshot_from_disk_ =
      false;                   // the cold-booted VM, used for the first call when min_warm is 0
  bool cold_counted_ = false;  // cold_ holds its memory in the budget
  std::string snapshot_key_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<Job> queue_;
  std::vector<std::thread> threads_;
  unsigned instances_ = 0, idle_ = 0, starting_ = 0;  // starting: being restored, soon idle
  bool stopping_ = false;
  std::atomic<std::uint64_t> invocations_{0};
  // The workers' VMs, read by status() while their workers run them (a VM is untracked before it
  // is destroyed). Its own lock: measuring reads /proc, which mu_ must not wait for.
  mutable std::mutex live_mu_;
  std::vector<const vmm::FunctionVm*> live_;
};

}  // namespace unifn::runtime
