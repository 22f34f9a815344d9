// A virtual machine with one vCPU, its RAM and its port/MMIO buses, and the vCPU run loop.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "kvm/kvm.h"
#include "memory/guest_memory.h"

namespace unifn::vmm {

// Why the run loop handed control back to its caller.
enum class StopKind {
  Parked,   // the guest waits for the host (NEXT_REQUEST, RESPOND): resume with run() again
  Exited,   // the guest finished on purpose (EXIT, exit_group, isa-debug-exit): exit_status
  Halted,   // HLT with nothing to wake it
  Aborted,  // the guest gave up with a reason of its own (ABORT)
  Fault,    // the guest crashed or broke the rules: message says how and where
  Timeout,  // the deadline passed
  Cancelled,  // cancel() was called (the caller went away)
};
std::string_view to_string(StopKind kind);

struct Stop {
  StopKind kind = StopKind::Fault;
  int exit_status = 0;
  std::string message;
};

// What a device answers to one access: go on running, or stop the loop.
struct IoResult {
  std::optional<Stop> stop;
  static IoResult next() { return {}; }
  static IoResult halt(Stop s) { return {std::move(s)}; }
};

struct PortAccess {
  std::uint16_t port;
  bool write;
  std::span<std::uint8_t> data;  // bytes written by the guest, or to fill for a read
};

struct MmioAccess {
  std::uint64_t addr;
  bool write;
  std::span<std::uint8_t> data;
};

class Machine;
using PortHandler = std::function<IoResult(Machine&, PortAccess&)>;
using MmioHandler = std::function<IoResult(Machine&, MmioAccess&)>;

class Machine {
 public:
  // log_dirty: track the pages the guest writes (for reset-in-place).
  Machine(const Kvm& kvm, std::unique_ptr<GuestMemory> memory, bool log_dirty = false);
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  GuestMemory& memory() { return *mem_; }
  const GuestMemory& memory() const { return *mem_; }
  Vcpu& vcpu() { return *vcpu_; }
  Vm& vm() { return vm_; }

  // Ports [first, first+count) go to handler. Later registrations replace earlier ones.
  void on_ports(std::uint16_t first, std::uint16_t count, PortHandler handler);
  // Guest-physical [base, base+size) outside RAM goes to handler.
  void on_mmio(std::uint64_t base, std::uint64_t size, MmioHandler handler);

  // Runs the vCPU until a device stops it, the guest faults, the deadline passes or cancel().
  Stop run(std::chrono::steady_clock::time_point deadline);
  // From any thread: the run under way (or the next one) stops with StopKind::Cancelled as soon
  // as the guest is out of KVM_RUN. An exit being handled (an accelerator op) finishes first.
  void cancel();
  // Forgets an earlier cancel(), before the next run.
  void clear_cancel() { cancel_.store(false); }

  // A one-line description of where the guest is: "rip 0x... (cpl 3)".
  std::string where();

  std::uint64_t exits() const { return exits_; }

 private:
  std::optional<Stop> handle_io(kvm_run& r);
  std::optional<Stop> handle_mmio(kvm_run& r);
  Stop fault(std::string what);
  void arm_deadline(std::chrono::steady_clock::time_point deadline);
  void disarm_deadline();

  std::unique_ptr<GuestMemory> mem_;
  Vm vm_;
  std::unique_ptr<Vcpu> vcpu_;
  struct PortRange {
    std::uint16_t count;
    PortHandler handler;
  };
  std::map<std::uint16_t, PortRange> ports_;  // keyed by first port
  struct MmioRange {
    std::uint64_t size;
    MmioHandler handler;
  };
  std::map<std::uint64_t, MmioRange> mmio_;
  std::uint64_t exits_ = 0;
  // POSIX timer that kicks the thread running this vCPU out of KVM_RUN at its deadline.
  void* timer_ = nullptr;
  int timer_tid_ = -1;
  std::atomic<bool> cancel_{false};
  std::atomic<int> running_tid_{-1};  // the thread inside run(), for cancel()'s kick
};

}  // namespace unifn::vmm
