// The sandbox platform's machine: the guest image runs as a separate process whose RAM (a
// memfd shared with the daemon) sits at the guest addresses; every system call it makes is
// stopped by ptrace and emulated, hypercalls and device windows arrive as faults and are decoded.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "vmm/fd.h"
#include "vmm/machine.h"
#include "vmm/platform/platform.h"
#include "vmm/platform/sandbox/tracer_thread.h"
#include "vmm/snapshot/persist.h"

namespace unifn::vmm {

// What the sandbox platform could set up on this host, decided at its first process.
struct SandboxIsolation {
  unsigned clone_flags = 0;  // the namespaces each guest process gets
  bool drop_uid = false;     // root without a user namespace: guests run as nobody
  bool nobody = false;       // guests run as nobody (directly, or mapped from a user namespace)
  std::vector<std::string> missing;  // namespaces the host refused, named
};

// The bytes of a sandbox CpuState: the process's general and x87/SSE registers, versioned.
struct SandboxCpuState {
  static constexpr std::uint32_t kVersion = 1;
  user_regs_struct regs{};
  user_fpregs_struct fp{};
  void write(ByteWriter& w) const;
  static SandboxCpuState read(ByteReader& r);
};

class SandboxMachine final : public Machine {
 public:
  // Creates the guest process (through the tracer thread) with RAM mapped as spec says.
  SandboxMachine(std::unique_ptr<GuestMemory> memory, const MachineSpec& spec);
  ~SandboxMachine() override;  // kills the guest process

  PlatformKind platform() const override { return PlatformKind::Sandbox; }
  pid_t pid() const { return pid_; }
  bool tracks_writes() const { return tracking_; }

  Stop run(std::chrono::steady_clock::time_point deadline) override;
  std::string where() override;
  void start_user(std::uint64_t rip, std::uint64_t rsp, std::uint64_t arg) override;
  GuestRegs regs() override;
  void set_regs(const GuestRegs& regs) override;
  CpuState capture() override;
  void apply(const CpuState& state) override;
  // Why apply() would refuse state; nullopt when it takes it.
  static std::optional<std::string> state_problem(const CpuState& state);
  std::vector<std::uint64_t> take_dirty_pages() override;
  std::uint64_t tsc_khz() override;
  std::uint64_t guest_tsc_now() override;

  static const SandboxIsolation& isolation();

 protected:
  void kick() override;

 private:
  enum class Interrupt { None, Deadline, Cancel };
  void spawn(const MachineSpec& spec);
  Stop loop(std::chrono::steady_clock::time_point deadline);
  std::optional<Stop> on_syscall_stop();
  std::optional<Stop> on_signal(int sig);
  std::optional<Stop> emulate(
      const struct DecodedAccess& a,
      const std::function<std::optional<Stop>(bool, std::span<std::uint8_t>)>& serve);
  std::optional<Stop> emulate_port(const struct DecodedAccess& a);
  std::optional<Stop> emulate_mmio(const struct DecodedAccess& a, std::uint64_t addr);
  std::optional<Stop> guest_exception(unsigned vector, std::optional<std::uint64_t> address);
  Stop died(int status);
  int reap();  // kills the process and waits for it (on the tracer thread); its wait status
  void fetch_regs();
  void flush_regs();
  std::vector<std::uint8_t> code_at(std::uint64_t rip);

  TracerThread tracer_;
  pid_t pid_ = -1;
  bool alive_ = false;
  bool tracking_ = false;
  Fd pagemap_;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> tracked_;  // ranges under write tracking
  user_regs_struct uregs_{};     // the guest's registers as of its last stop
  user_fpregs_struct fpregs_{};  // SSE/x87 state to load before the next run
  bool regs_dirty_ = false, fpregs_dirty_ = false;
  std::atomic<std::uint64_t> last_rip_{0};
  std::atomic<bool> running_{false};
  std::atomic<Interrupt> interrupt_{Interrupt::None};
};

}  // namespace unifn::vmm
