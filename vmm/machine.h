// A guest with one vCPU and its RAM on some platform (KVM, the sandbox, a fake), its port/MMIO
// buses and the traps that reach the personality: the seam every platform implements.
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
#include <vector>

#include "vmm/memory/guest_memory.h"
#include "vmm/platform/regs.h"

namespace unifn::vmm {

// Why the run loop handed control back to its caller.
enum class StopKind {
  Parked,     // the guest waits for the host (NEXT_REQUEST, RESPOND): resume with run() again
  Exited,     // the guest finished on purpose (EXIT, exit_group, isa-debug-exit): exit_status
  Halted,     // HLT with nothing to wake it
  Aborted,    // the guest gave up with a reason of its own (ABORT)
  Fault,      // the guest crashed or broke the rules: message says how and where
  Timeout,    // the deadline passed
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

// A CPU exception the guest took (and did not handle: unifn guests have no handlers).
struct GuestException {
  unsigned vector = 0;
  std::optional<std::uint64_t> error_code;
  std::optional<std::uint64_t> rip;      // unknown when the exception frame was unreadable
  std::optional<std::uint64_t> address;  // the faulting address of a #PF
};

// Which platform a machine runs on. Names are what the config file and --platform take.
enum class PlatformKind { Kvm, Sandbox, Fake };
std::string_view to_string(PlatformKind kind);

// The vCPU state of a snapshot, in the format of the platform that captured it: a platform
// applies only its own (the snapshot key includes the platform).
// Its snapshot state (snapshot/persist.h): Machine::capture saves it, the platform's
// cpu_state_problem checks it, Machine::apply restores it.
class ByteWriter;
class ByteReader;
struct CpuState {
  PlatformKind platform = PlatformKind::Kvm;
  std::vector<std::uint8_t> bytes;
  bool operator==(const CpuState&) const = default;

  static constexpr std::uint32_t kVersion = 1;
  static constexpr std::uint64_t kMaxBytes = 1u << 20;
  void write(ByteWriter& w) const;
  static CpuState read(ByteReader& r);  // refuses an unknown platform and more than kMaxBytes
};

class Machine;
using PortHandler = std::function<IoResult(Machine&, PortAccess&)>;
using MmioHandler = std::function<IoResult(Machine&, MmioAccess&)>;
// A Linux system call: regs.rax holds its number on entry and the return value on the way out.
using SyscallHandler = std::function<IoResult(Machine&, GuestRegs&)>;
using ExceptionHandler = std::function<IoResult(Machine&, const GuestException&)>;

class Machine {
 public:
  explicit Machine(std::unique_ptr<GuestMemory> memory);
  virtual ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  virtual PlatformKind platform() const = 0;
  GuestMemory& memory() { return *mem_; }
  const GuestMemory& memory() const { return *mem_; }

  // Ports [first, first+count) go to handler. Later registrations replace earlier ones.
  void on_ports(std::uint16_t first, std::uint16_t count, PortHandler handler);
  // Guest-physical [base, base+size) outside RAM goes to handler.
  void on_mmio(std::uint64_t base, std::uint64_t size, MmioHandler handler);
  void on_syscall(SyscallHandler handler) { syscall_ = std::move(handler); }
  void on_exception(ExceptionHandler handler) { exception_ = std::move(handler); }

  // Runs the vCPU until a handler stops it, the guest faults, the deadline passes or cancel().
  virtual Stop run(std::chrono::steady_clock::time_point deadline) = 0;
  // From any thread: the run under way (or the next one) stops with StopKind::Cancelled as soon
  // as the guest is out of the CPU. An exit being handled (an accelerator op) finishes first.
  void cancel();
  // Forgets an earlier cancel(), before the next run.
  void clear_cancel() { cancel_.store(false); }
  // Whether cancel() was called: devices that work long inside one exit (virtio-accel) stop early.
  bool cancelled() const { return cancel_.load(); }

  // A one-line description of where the guest is: "rip 0x... (cpl 3)".
  virtual std::string where() = 0;
  std::uint64_t exits() const { return exits_; }

  // The unifn entry: 64-bit user mode at rip with rsp, rdi = arg, SSE ready. Platforms that need
  // privileged structures in guest RAM (KVM's page tables, GDT, stubs) write them here.
  virtual void start_user(std::uint64_t rip, std::uint64_t rsp, std::uint64_t arg) = 0;
  virtual GuestRegs regs() = 0;
  virtual void set_regs(const GuestRegs& regs) = 0;
  // The whole vCPU state for a snapshot, and back (a state of another platform is refused).
  virtual CpuState capture() = 0;
  virtual void apply(const CpuState& state) = 0;
  // Guest pages (page numbers) the guest wrote since the last call; the platform started
  // tracking when the machine was created with track_writes. Host writes are GuestMemory's.
  virtual std::vector<std::uint64_t> take_dirty_pages() = 0;
  // The guest's TSC: its frequency in kHz (0 when unknown) and its value now.
  virtual std::uint64_t tsc_khz() = 0;
  virtual std::uint64_t guest_tsc_now() = 0;

 protected:
  // The run loops of every platform send their traps here.
  std::optional<Stop> port_access(PortAccess& access);
  std::optional<Stop> mmio_access(MmioAccess& access);
  bool has_mmio(std::uint64_t addr) const;
  std::optional<Stop> syscall(GuestRegs& regs);
  std::optional<Stop> exception(const GuestException& e);
  // Makes the run under way notice cancel_ (a signal, a stop request).
  virtual void kick() = 0;
  void count_exit() { ++exits_; }

 private:
  std::unique_ptr<GuestMemory> mem_;
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
  SyscallHandler syscall_;
  ExceptionHandler exception_;
  std::uint64_t exits_ = 0;
  std::atomic<bool> cancel_{false};
};

}  // namespace unifn::vmm
