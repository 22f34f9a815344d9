// The vCPU run loop: one switch over KVM exit reasons, dispatching to port and MMIO handlers.
#include "machine.h"

#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <mutex>
#include <system_error>

namespace unifn::vmm {

std::string_view to_string(StopKind kind) {
  switch (kind) {
    case StopKind::Parked: return "parked";
    case StopKind::Exited: return "exited";
    case StopKind::Halted: return "halted";
    case StopKind::Aborted: return "aborted";
    case StopKind::Fault: return "fault";
    case StopKind::Timeout: return "timeout";
    case StopKind::Cancelled: return "cancelled";
  }
  return "unknown";
}

namespace {

// The kvm_run of the vCPU this thread is running, for the deadline signal's handler.
thread_local kvm_run* t_running = nullptr;

int deadline_signal() { return SIGRTMIN + 2; }

void on_deadline_signal(int) {
  if (kvm_run* r = t_running) r->immediate_exit = 1;  // makes KVM_RUN return EINTR at once
}

void install_deadline_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = on_deadline_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must come back with EINTR
    sigaction(deadline_signal(), &sa, nullptr);
  });
}

}  // namespace

Machine::Machine(const Kvm& kvm, std::unique_ptr<GuestMemory> memory, bool log_dirty)
    : mem_(std::move(memory)), vm_(kvm) {
  install_deadline_handler();
  vm_.map_memory(*mem_, log_dirty);
  vcpu_ = vm_.create_vcpu(0);
}

Machine::~Machine() {
  if (timer_) timer_delete(static_cast<timer_t>(timer_));
}

void Machine::on_ports(std::uint16_t first, std::uint16_t count, PortHandler handler) {
  ports_[first] = PortRange{count, std::move(handler)};
}

void Machine::on_mmio(std::uint64_t base, std::uint64_t size, MmioHandler handler) {
  mmio_[base] = MmioRange{size, std::move(handler)};
}

void Machine::arm_deadline(std::chrono::steady_clock::time_point deadline) {
  int tid = static_cast<int>(::syscall(SYS_gettid));
  if (timer_ && timer_tid_ != tid) {
    timer_delete(static_cast<timer_t>(timer_));
    timer_ = nullptr;
  }
  if (!timer_) {
    sigevent sev{};
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = deadline_signal();
    sev._sigev_un._tid = tid;
    timer_t t;
    if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0)
      throw std::system_error(errno, std::generic_category(), "timer_create for the vCPU deadline");
    timer_ = t;
    timer_tid_ = tid;
  }
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
  itimerspec spec{};
  spec.it_value.tv_sec = ns / 1000000000;
  spec.it_value.tv_nsec = ns % 1000000000;
  if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
  // steady_clock is CLOCK_MONOTONIC on Linux, so the absolute time carries over.
  timer_settime(static_cast<timer_t>(timer_), TIMER_ABSTIME, &spec, nullptr);
}

void Machine::disarm_deadline() {
  itimerspec off{};
  timer_settime(static_cast<timer_t>(timer_), 0, &off, nullptr);
}

std::string Machine::where() {
  try {
    auto r = vcpu_->regs();
    auto s = vcpu_->sregs();
    return fmt::format("rip {:#x} (cpl {})", r.rip, s.cs.selector & 3);
  } catch (const std::exception&) {
    return "rip unknown";
  }
}

Stop Machine::fault(std::string what) { return Stop{StopKind::Fault, 0, fmt::format("{} at {}", what, where())}; }

void Machine::cancel() {
  cancel_.store(true);
  // The kick: its handler sets immediate_exit, so KVM_RUN returns EINTR now or on its next entry.
  if (int tid = running_tid_.load(); tid > 0) ::syscall(SYS_tgkill, ::getpid(), tid, deadline_signal());
}

Stop Machine::run(std::chrono::steady_clock::time_point deadline) {
  kvm_run& r = vcpu_->run_state();
  r.immediate_exit = 0;
  t_running = &r;
  running_tid_.store(static_cast<int>(::gettid()));
  arm_deadline(deadline);
  struct Cleanup {
    Machine* m;
    ~Cleanup() {
      m->running_tid_.store(-1);
      m->disarm_deadline();
      t_running = nullptr;
    }
  } cleanup{this};
  const auto cancelled = [this] {
    return Stop{StopKind::Cancelled, 0, fmt::format("the call was cancelled, stopped at {}", where())};
  };
  if (cancel_.load()) return cancelled();  // before running_tid_ was set: no kick came

  for (;;) {
    if (!vcpu_->enter()) {
      if (cancel_.load()) return cancelled();
      if (std::chrono::steady_clock::now() >= deadline)
        return Stop{StopKind::Timeout, 0, fmt::format("the guest ran past its deadline, stopped at {}", where())};
      r.immediate_exit = 0;  // a stray kick from an earlier deadline: keep going
      continue;
    }
    ++exits_;
    std::optional<Stop> stop;
    switch (r.exit_reason) {
      case KVM_EXIT_IO:
        stop = handle_io(r);
        break;
      case KVM_EXIT_MMIO:
        stop = handle_mmio(r);
        break;
      case KVM_EXIT_HLT:
        return Stop{StopKind::Halted, 0, fmt::format("the guest halted at {}", where())};
      case KVM_EXIT_SHUTDOWN:
        return fault("triple fault (the guest's exception handling failed)");
      case KVM_EXIT_INTR:
        break;  // a signal: the deadline check happens on the next EINTR
      case KVM_EXIT_FAIL_ENTRY:
        return fault(fmt::format("VM entry failed (hardware reason {:#x})",
                                 r.fail_entry.hardware_entry_failure_reason));
      case KVM_EXIT_INTERNAL_ERROR:
        return fault(fmt::format("KVM internal error, suberror {}{}", r.internal.suberror,
                                 r.internal.suberror == KVM_INTERNAL_ERROR_EMULATION
                                     ? " (an instruction KVM could not emulate, such as SSE in ring 0)"
                                     : ""));
      case KVM_EXIT_SYSTEM_EVENT:
        return Stop{StopKind::Exited, 0, "the guest asked for a reset or power-off"};
      default:
        return fault(fmt::format("unhandled VM exit reason {}", r.exit_reason));
    }
    if (stop) return std::move(*stop);
  }
}

std::optional<Stop> Machine::handle_io(kvm_run& r) {
  const std::uint16_t port = r.io.port;
  auto it = ports_.upper_bound(port);
  if (it == ports_.begin() || port >= std::prev(it)->first + std::prev(it)->second.count) {
    // Unclaimed ports read as all ones and ignore writes, as on real hardware.
    if (r.io.direction == KVM_EXIT_IO_IN) {
      // Safe: io.data_offset points into the kvm_run mapping, sized by KVM for size*count bytes.
      std::memset(reinterpret_cast<std::uint8_t*>(&r) + r.io.data_offset, 0xFF, r.io.size * r.io.count);
    }
    return std::nullopt;
  }
  auto& handler = std::prev(it)->second.handler;
  // Safe: as above; KVM places size*count bytes of port data at data_offset inside kvm_run.
  auto* data = reinterpret_cast<std::uint8_t*>(&r) + r.io.data_offset;
  for (std::uint32_t i = 0; i < r.io.count; ++i) {
    PortAccess a{port, r.io.direction == KVM_EXIT_IO_OUT, std::span(data + i * r.io.size, r.io.size)};
    IoResult res = handler(*this, a);
    if (res.stop) return std::move(res.stop);
  }
  return std::nullopt;
}

std::optional<Stop> Machine::handle_mmio(kvm_run& r) {
  const std::uint64_t addr = r.mmio.phys_addr;
  auto it = mmio_.upper_bound(addr);
  if (it == mmio_.begin() || addr - std::prev(it)->first >= std::prev(it)->second.size)
    return fault(fmt::format("the guest {} unmapped guest-physical address {:#x}", r.mmio.is_write ? "wrote" : "read",
                             addr));
  MmioAccess a{addr, r.mmio.is_write != 0, std::span(r.mmio.data, std::min<std::uint32_t>(r.mmio.len, 8))};
  IoResult res = std::prev(it)->second.handler(*this, a);
  return std::move(res.stop);
}

}  // namespace unifn::vmm
