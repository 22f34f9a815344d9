// Instance pools: snapshot once, restore per instance, one vCPU thread per instance, bounded queue.
#include "src/runtime/instance_pool.h"

#include <sys/mman.h>

#include <algorithm>
#include <exception>
#include <utility>

#include <fmt/format.h>

#include "vmm/devices/console.h"
#include "vmm/snapshot/snapshot_store.h"
#include "vmm/snapshot/vm_identity.h"

namespace unifn::runtime {

namespace {

using Clock = std::chrono::steady_clock;

vmm::Fd snapshot_file(const std::string& name) {
  int fd = memfd_create(("unifn-" + name).c_str(), MFD_CLOEXEC);
  if (fd < 0)
    throw std::system_error(errno, std::generic_category(), "memfd_create for a snapshot");
  return vmm::Fd(fd);
}

// What an exception in flight says, for a sentence.
std::string describe(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

// One of the pool's own lines (Console::kVmmPrefix and the text). It must not end the worker that
// writes it: a log callback that throws (or a line that cannot be formatted) loses the line,
// nothing more.
template <class... Args>
void note(const PoolConfig& cfg, const std::string& call_id, fmt::format_string<Args...> format,
          Args&&... args) noexcept {
  if (!cfg.log) return;
  try {
    cfg.log(cfg.name, call_id,
            fmt::format("{}{}", vmm::Console::kVmmPrefix,
                        fmt::format(format, std::forward<Args>(args)...)));
  } catch (...) {
  }
}

}  // namespace

InstancePool::InstancePool(PoolConfig cfg) : cfg_(std::move(cfg)) {
  if (!cfg_.unavailable.empty()) {
    note(cfg_, "", "cannot run on this machine, its calls answer 503: {}", cfg_.unavailable);
    return;
  }
  image_ = vmm::FunctionImage::load(cfg_.image_path);
  auto sink = [this](std::string_view line) {
    if (cfg_.log) cfg_.log(cfg_.name, "init", line);
  };
  if (!cfg_.state_dir.empty()) {
    vmm::SnapshotStore store(cfg_.state_dir);
    auto got = store.get_or_build(image_, cfg_.vm, sink);
    snapshot_key_ = got.key;
    if (!got.warning.empty()) note(cfg_, "", "warning: {}", got.warning);
    snapshot_ = got.snapshot;
    snapshot_from_disk_ = got.from_disk;
    if (cfg_.settings.min_warm == 0)
      cold_ = std::move(got.booted);  // its first call is served cold
  } else {
    auto vm = vmm::FunctionVm::boot(image_, cfg_.vm, sink);
    snapshot_ = vm->snapshot(snapshot_file(cfg_.name));
    if (cfg_.settings.min_warm == 0) cold_ = std::move(vm);
  }
  if (cfg_.on_snapshot) cfg_.on_snapshot(snapshot_from_disk_);
  const std::uint64_t memory = cfg_.vm.memory_bytes;
  if (cold_ && cfg_.memory_budget) {
    cold_counted_ = cfg_.memory_budget->try_take(memory);
    if (!cold_counted_) cold_.reset();  // no room to keep it: the first call restores instead
  }
  std::lock_guard lock(mu_);
  for (unsigned i = 0; i < cfg_.settings.min_warm && i < cfg_.settings.max_instances; ++i) {
    if (cfg_.memory_budget) cfg_.memory_budget->take(memory);
    start_worker();
  }
}

InstancePool::~InstancePool() {
  drain(std::chrono::milliseconds(0));
  std::lock_guard lock(mu_);
  if (cold_counted_) cfg_.memory_budget->give(cfg_.vm.memory_bytes);
  cold_counted_ = false;
}

void InstancePool::unqueued(const Job& job) noexcept {
  if (cfg_.queue_budget) cfg_.queue_budget->give(job.call.body.size());
}

void InstancePool::unqueued(const std::deque<Job>& jobs) noexcept {
  for (const auto& job : jobs) unqueued(job);
}

void InstancePool::instance_ended() noexcept {
  --instances_;
  if (cfg_.memory_budget) cfg_.memory_budget->give(cfg_.vm.memory_bytes);
}

std::unique_ptr<vmm::FunctionVm> InstancePool::fresh_instance(
    std::shared_ptr<const std::string> tag) {
  auto sink = [this, tag](std::string_view line) {
    if (cfg_.log) cfg_.log(cfg_.name, *tag, line);
  };
  {
    std::lock_guard lock(mu_);
    if (cold_) {
      // The worker's own share of the budget covers it from now on.
      if (cold_counted_) cfg_.memory_budget->give(cfg_.vm.memory_bytes);
      cold_counted_ = false;
      return std::move(cold_);
    }
  }
  return vmm::FunctionVm::restore(snapshot_, image_, cfg_.vm, sink);
}

void InstancePool::submit(Invocation call, Completion done) {
  std::unique_lock lock(mu_);
  if (stopping_) {
    lock.unlock();
    done(failure(CallOutcome::Unavailable, fmt::format("function {} is shutting down", cfg_.name)));
    return;
  }
  if (!cfg_.unavailable.empty()) {
    lock.unlock();
    done(failure(CallOutcome::Unavailable, fmt::format("function {} cannot run on this machine: {}",
                                                       cfg_.name, cfg_.unavailable)));
    return;
  }
  if (const std::size_t max_queue = cfg_.settings.max_queue; queue_.size() >= max_queue) {
    lock.unlock();  // apply() may change the settings from here on: the message names what held
    done(failure(
        CallOutcome::QueueFull,
        fmt::format("function {}: the queue is full ({} calls waiting)", cfg_.name, max_queue)));
    return;
  }
  const std::uint64_t bytes = call.body.size();
  if (cfg_.queue_budget && !cfg_.queue_budget->try_take(bytes)) {
    const auto& b = *cfg_.queue_budget;
    lock.unlock();
    done(failure(
        CallOutcome::QueueFull,
        fmt::format(
            "function {}: the request bodies waiting in the queues come to {} bytes, and this "
            "one ({} bytes) would pass limits.max_queue_bytes ({})",
            cfg_.name, b.used(), bytes, b.limit())));
    return;
  }
  if (queue_.size() + 1 > idle_ + starting_ && instances_ < cfg_.settings.max_instances) {
    const std::uint64_t memory = cfg_.vm.memory_bytes;
    // The booted VM kept for a first cold call already holds its share: the new worker's now.
    const bool from_cold = std::exchange(cold_counted_, false);
    if (!cfg_.memory_budget || from_cold || cfg_.memory_budget->try_take(memory)) {
      start_worker();
    } else if (instances_ == 0) {  // nothing would ever serve it
      const auto& b = *cfg_.memory_budget;
      lock.unlock();
      if (cfg_.queue_budget) cfg_.queue_budget->give(bytes);
      done(failure(
          CallOutcome::Unavailable,
          fmt::format(
              "function {} has no instance running, and another {} MiB of guest memory would "
              "pass limits.guest_memory_mb ({} MiB, {} MiB of which instances hold); retry later",
              cfg_.name, memory >> 20, b.limit() >> 20, b.used() >> 20)));
      return;
    }  // else it waits for one of the instances running
  }
  queue_.push_back(Job{std::move(call), std::move(done), Clock::now()});
  cv_.notify_one();
}

InvocationResult InstancePool::serve(vmm::FunctionVm& vm, Job& job, StartKind start,
                                     std::chrono::milliseconds timeout) {
  const auto& body = job.call.body;
  auto deadline = Clock::now() + timeout;
  // A client that hangs up stops its guest: the instance is replaced, its place freed at once.
  auto& machine = vm.machine();
  machine.clear_cancel();
  struct Hook {
    CancelToken* token;
    ~Hook() {
      if (token) token->clear();  // after this the hook cannot touch the machine
    }
  } hook{job.call.cancelled.get()};
  if (hook.token) hook.token->on_cancel([&machine] { machine.cancel(); });
  auto out = vm.invoke(std::span(reinterpret_cast<const std::uint8_t*>(body.data()),
                                 body.size()),  // Safe: chars as bytes.
                       job.call.content_type, deadline);
  InvocationResult r;
  r.start = start;
  if (out.too_large) return failure(CallOutcome::TooLarge, out.body);
  switch (out.stop.kind) {
    case vmm::StopKind::Parked:
      r.status = static_cast<int>(out.status);
      r.content_type = std::move(out.content_type);
      r.body = std::move(out.body);
      return r;
    case vmm::StopKind::Timeout:
      return failure(CallOutcome::TimedOut, fmt::format("function {} did not answer within {} ms",
                                                        cfg_.name, timeout.count()));
    case vmm::StopKind::Cancelled:
      return failure(
          CallOutcome::ClientGone,
          fmt::format("function {}: the client went away, so the call was stopped", cfg_.name));
    default:
      return failure(CallOutcome::Failed,
                     fmt::format("function {} failed: {}", cfg_.name, out.stop.message));
  }
}

void InstancePool::complete(Job& job, InvocationResult r) noexcept {
  try {
    job.done(std::move(r));
  } catch (...) {
    note(cfg_, job.call.call_id, "the completion of a call threw: {}",
         describe(std::current_exception()));
  }
}

void InstancePool::fail_all(std::deque<Job> jobs, CallOutcome outcome,
                            const std::string& error) noexcept {
  for (auto& job : jobs) {
    try {
      complete(job, failure(outcome, error));
    } catch (...) {  // failure() could not allocate: nothing left to tell the caller with
    }
  }
}

void InstancePool::worker() {
  std::unique_ptr<vmm::FunctionVm> vm;
  bool fresh = true;
  StartKind start = StartKind::Restored;
  bool counted_idle = false;  // already counted in idle_ (set before the last completion ran)
  bool starting = true;       // counted in starting_ until it first becomes idle
  auto tag = std::make_shared<std::string>();  // the call being served, for console lines
  // Untracked before vm is destroyed, whichever way this worker ends.
  struct Untrack {
    InstancePool& pool;
    const std::unique_ptr<vmm::FunctionVm>& vm;
    ~Untrack() { pool.track(vm.get(), false); }
  } untrack{*this, vm};
  auto drop = [&] {
    track(vm.get(), false);
    vm.reset();
  };
  for (;;) {
    if (!vm) {
      std::string why;
      try {
        bool was_cold = false;
        {
          std::lock_guard lock(mu_);
          was_cold = cold_ != nullptr;
        }
        vm = fresh_instance(tag);
        track(vm.get(), true);
        start = was_cold ? StartKind::Cold : StartKind::Restored;
        fresh = true;
      } catch (
          ...) {  // whatever it was (an errno, a platform error, a bad snapshot): this worker ends
        why = describe(std::current_exception());
      }
      if (!vm) {
        note(cfg_, "", "cannot restore an instance: {}", why);
        std::deque<Job> stranded;
        {
          std::lock_guard lock(mu_);
          instance_ended();
          if (starting) --starting_;
          // With no instance left, queued calls would wait for a submit that may never come.
          if (instances_ == 0) stranded.swap(queue_);
          idle_cv_.notify_all();
        }
        unqueued(stranded);
        fail_all(std::move(stranded), CallOutcome::Unavailable,
                 fmt::format("function {}: no instance could be started: {}", cfg_.name, why));
        return;
      }
    }
    std::unique_lock lock(mu_);
    if (!counted_idle) ++idle_;
    if (starting) --starting_;
    starting = false;
    counted_idle = false;
    // A lowered max_instances (apply) ends idle instances above it.
    auto surplus = [this] { return instances_ > cfg_.settings.max_instances; };
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || surplus(); });
    --idle_;
    if (queue_.empty() || surplus()) {  // stopping with nothing left to do, or one too many
      instance_ended();
      idle_cv_.notify_all();
      return;
    }
    const PoolSettings settings = cfg_.settings;  // this call's, whatever apply() does meanwhile
    Job job = std::move(queue_.front());
    queue_.pop_front();
    unqueued(job);
    idle_cv_.notify_all();
    lock.unlock();
    if (job.call.cancelled && job.call.cancelled->cancelled()) {  // the client left while queued
      complete(job, failure(CallOutcome::ClientGone, "the client went away"));
      continue;
    }
    *tag = job.call.call_id;
    if (job.call.on_start) {
      try {
        job.call.on_start();
      } catch (...) {  // only a state report: the call is served all the same
        note(cfg_, job.call.call_id, "the start report of a call threw: {}",
             describe(std::current_exception()));
      }
    }
    auto t0 = Clock::now();
    const StartKind kind = fresh ? start : StartKind::Warm;
    InvocationResult r;
    try {
      r = serve(*vm, job, kind, settings.timeout);
    } catch (...) {
      // Something on the vCPU path threw (a console sink whose write failed, a platform error):
      // the guest's state is unknown, so this call fails and its instance is dropped below. The
      // pool, and every other call, go on.
      r = failure(CallOutcome::Failed,
                  fmt::format("function {} failed: the host could not complete the call: {}",
                              cfg_.name, describe(std::current_exception())));
      r.start = kind;
    }
    r.duration = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0);
    fresh = false;
    ++invocations_;
    const bool healthy = r.answered() || r.outcome == CallOutcome::TooLarge;
    if (!healthy) {
      drop();  // crashed, aborted, timed out or threw: never reused
    } else if (settings.per_request && !vm->can_reset()) {
      drop();  // booted cold: nothing to reset to, so a restored instance takes its place
    } else if (settings.per_request) {
      try {
        vm->reset();
      } catch (...) {
        note(cfg_, job.call.call_id, "reset failed, the instance is dropped: {}",
             describe(std::current_exception()));
        drop();
      }
    }
    if (vm) {  // ready again before the caller hears back, so its next call finds us idle
      std::lock_guard relock(mu_);
      ++idle_;
      counted_idle = true;
    }
    complete(job, std::move(r));
  }
}

void InstancePool::track(const vmm::FunctionVm* vm, bool alive) {
  if (!vm) return;
  std::lock_guard lock(live_mu_);
  if (alive)
    live_.push_back(vm);
  else
    std::erase(live_, vm);
}

void InstancePool::start_worker() {
  ++instances_;
  ++starting_;
  threads_.emplace_back([this] { worker(); });
}

bool InstancePool::same_vm(const PoolConfig& next) const {
  if (!cfg_.unavailable.empty() || !next.unavailable.empty())
    return cfg_.unavailable == next.unavailable;
  const auto mine = vmm::VmIdentity::of(*image_, cfg_.vm);
  // Everything but the image's content first: a changed setting needs no read of the image.
  if (!(vmm::VmIdentity::of(*image_, next.vm) == mine)) return false;
  std::shared_ptr<const vmm::FunctionImage> image;
  try {
    image = vmm::FunctionImage::load(next.image_path);
  } catch (const std::exception&) {
    return false;  // a new pool will say what is wrong with it
  }
  return vmm::VmIdentity::of(*image, next.vm) == mine;
}

bool InstancePool::can_apply(const PoolSettings& next) const {
  std::lock_guard lock(mu_);
  return next.per_request == cfg_.settings.per_request;
}

void InstancePool::apply(const PoolConfig& next) {
  std::lock_guard lock(mu_);
  if (stopping_) return;
  cfg_.settings = next.settings;
  cfg_.image_path = next.image_path;
  cfg_.accel = next.accel;
  const std::uint64_t memory = cfg_.vm.memory_bytes;
  const unsigned warm = std::min(cfg_.settings.min_warm, cfg_.settings.max_instances);
  while (cfg_.unavailable.empty() && instances_ < warm) {
    // The booted VM kept for a first cold call already holds its share: the new worker's now.
    const bool from_cold = std::exchange(cold_counted_, false);
    if (cfg_.memory_budget && !from_cold && !cfg_.memory_budget->try_take(memory)) {
      note(cfg_, "", "min_warm {}: only {} instances fit in limits.guest_memory_mb", warm,
           instances_);
      break;
    }
    start_worker();
  }
  cv_.notify_all();  // idle instances above a lowered max_instances end
}

void InstancePool::drain(std::chrono::milliseconds grace) {
  std::vector<std::thread> threads;
  std::deque<Job> left;
  {
    std::unique_lock lock(mu_);
    if (!stopping_) {
      idle_cv_.wait_for(lock, grace, [this] { return queue_.empty(); });
      stopping_ = true;
      // Taken out whole, under the lock: from here no worker can pop one of these, and the
      // queue is never walked unlocked. They are answered below, outside the lock.
      left.swap(queue_);
      cv_.notify_all();
    }
    threads.swap(threads_);
    if (threads.empty())  // another drain is joining them: wait for every worker to be done
      idle_cv_.wait(lock, [this] { return instances_ == 0; });
  }
  unqueued(left);
  fail_all(std::move(left), CallOutcome::Unavailable,
           fmt::format("function {} is shutting down", cfg_.name));
  for (auto& t : threads) t.join();
}

FunctionStatus InstancePool::status() const {
  std::unique_lock lock(mu_);
  FunctionStatus s;
  s.name = cfg_.name;
  s.image = cfg_.image_path;
  s.isolation = cfg_.settings.per_request ? "per-request" : "reuse";
  s.accel = cfg_.accel;
  s.accel_backend = cfg_.accel_backend;
  s.unavailable = cfg_.unavailable;
  s.invocations = invocations_.load();
  s.instances = instances_;
  s.idle_instances = idle_;
  s.max_instances = cfg_.settings.max_instances;
  s.queued = static_cast<unsigned>(queue_.size());
  s.env = cfg_.vm.env;
  // Nobody runs the kept cold VM while it is in cold_ (it is taken out under mu_).
  if (cold_) s.private_memory_bytes = cold_->private_memory_bytes();
  lock.unlock();
  std::lock_guard live(live_mu_);
  for (const auto* vm : live_) s.private_memory_bytes += vm->private_memory_bytes();
  return s;
}

}  // namespace unifn::runtime
