// A memory-only machine that runs no guest code: unit tests and fuzzers hand its handlers traps
// (ports, MMIO, system calls, exceptions) directly, with whatever registers and memory they like.
#pragma once

#include <deque>

#include "vmm/machine.h"
#include "vmm/platform/platform.h"

namespace unifn::vmm {

class FakeMachine final : public Machine {
 public:
  explicit FakeMachine(std::unique_ptr<GuestMemory> memory) : Machine(std::move(memory)) {}

  PlatformKind platform() const override { return PlatformKind::Fake; }
  // Returns the next scripted stop, or a fault saying that nothing runs here.
  Stop run(std::chrono::steady_clock::time_point) override;
  std::string where() override;
  void start_user(std::uint64_t rip, std::uint64_t rsp, std::uint64_t arg) override;
  GuestRegs regs() override { return regs_; }
  void set_regs(const GuestRegs& regs) override { regs_ = regs; }
  CpuState capture() override;
  void apply(const CpuState& state) override;
  // Why apply() would refuse state; nullopt when it takes it.
  static std::optional<std::string> state_problem(const CpuState& state);
  std::vector<std::uint64_t> take_dirty_pages() override { return std::exchange(dirty_, {}); }
  std::uint64_t tsc_khz() override { return 1000000; }
  std::uint64_t guest_tsc_now() override { return ++tsc_; }

  // The traps a platform's run loop would deliver.
  std::optional<Stop> deliver_port(PortAccess& a) { return port_access(a); }
  std::optional<Stop> deliver_mmio(MmioAccess& a) { return mmio_access(a); }
  std::optional<Stop> deliver_syscall(GuestRegs& r) { return syscall(r); }
  std::optional<Stop> deliver_exception(const GuestException& e) { return exception(e); }

  std::deque<Stop> script;            // what the next run()s return
  std::vector<std::uint64_t> dirty_;  // what the next take_dirty_pages() returns

 protected:
  void kick() override {}

 private:
  GuestRegs regs_;
  std::uint64_t tsc_ = 0;
};

// The fake platform: create() gives FakeMachines over private RAM.
Platform& fake_platform();

}  // namespace unifn::vmm
