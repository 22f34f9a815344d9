// A memory-only machine for the fuzzers whose run() plays a program the harness hands it: the
// traps (ports, MMIO, system calls, exceptions) it delivers reach the handlers a FunctionVm
// registered exactly as a platform's run loop would deliver them, with the registers and memory
// the program chose. It is the fake platform's FakeMachine with one difference: FakeMachine::run
// returns scripted Stops only, so no trap can be delivered while FunctionVm::invoke waits in
// run(); the guest's side of a request (RESPOND while a request is current, a RESPOND that parks
// again) needs traps inside run(). Shared by the guest fuzzer and the seed generator.
#pragma once

#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "vmm/machine.h"
#include "vmm/platform/platform.h"

namespace unifn::fuzz {

class FuzzMachine;
// What run() does: deliver traps through the deliver_* calls, return the Stop that ended the run.
using Program =
    std::function<vmm::Stop(FuzzMachine&, std::chrono::steady_clock::time_point deadline)>;

class FuzzMachine final : public vmm::Machine {
 public:
  FuzzMachine(std::unique_ptr<vmm::GuestMemory> memory, const Program& program, bool track_writes)
      : Machine(std::move(memory)), program_(program), track_writes_(track_writes) {}

  vmm::PlatformKind platform() const override { return vmm::PlatformKind::Fake; }
  vmm::Stop run(std::chrono::steady_clock::time_point deadline) override {
    count_exit();
    if (cancelled()) return vmm::Stop{vmm::StopKind::Cancelled, 0, "the call was cancelled"};
    if (!program_) return vmm::Stop{vmm::StopKind::Fault, 0, "the fuzz machine has no program"};
    return program_(*this, deadline);
  }
  std::string where() override { return "the fuzz machine"; }
  void start_user(std::uint64_t rip, std::uint64_t rsp, std::uint64_t arg) override {
    regs_ = {};
    regs_.rip = rip;
    regs_.rsp = rsp;
    regs_.rdi = arg;
  }
  vmm::GuestRegs regs() override { return regs_; }
  void set_regs(const vmm::GuestRegs& regs) override { regs_ = regs; }
  vmm::CpuState capture() override {
    vmm::CpuState s{vmm::PlatformKind::Fake, std::vector<std::uint8_t>(sizeof regs_)};
    std::memcpy(s.bytes.data(), &regs_, sizeof regs_);  // a plain struct as bytes
    return s;
  }
  void apply(const vmm::CpuState& state) override {
    if (state.platform != vmm::PlatformKind::Fake || state.bytes.size() != sizeof regs_)
      throw std::invalid_argument("not a fake vCPU state");
    std::memcpy(&regs_, state.bytes.data(), sizeof regs_);
  }
  std::vector<std::uint64_t> take_dirty_pages() override { return std::exchange(dirty_, {}); }
  std::uint64_t tsc_khz() override { return 1000000; }
  std::uint64_t guest_tsc_now() override { return ++tsc_; }

  // The traps a platform's run loop delivers.
  std::optional<vmm::Stop> deliver_port(vmm::PortAccess& a) { return port_access(a); }
  std::optional<vmm::Stop> deliver_mmio(vmm::MmioAccess& a) { return mmio_access(a); }
  std::optional<vmm::Stop> deliver_syscall(vmm::GuestRegs& r) { return syscall(r); }
  std::optional<vmm::Stop> deliver_exception(const vmm::GuestException& e) { return exception(e); }

  // A write by the guest itself (not through GuestMemory's host-write tracking): the pages count
  // as dirty for the next reset, as KVM's dirty log would report them.
  void guest_write(std::uint64_t gpa, std::span<const std::uint8_t> bytes) {
    memory().write(vmm::GuestAddr(gpa), bytes);
    if (!track_writes_ || bytes.empty()) return;
    for (std::uint64_t p = gpa / 4096; p <= (gpa + bytes.size() - 1) / 4096; ++p)
      dirty_.push_back(p);
  }
  // The guest's `outl gpa, port`.
  std::optional<vmm::Stop> out32(std::uint16_t port, std::uint32_t value) {
    std::uint8_t data[4];
    std::memcpy(data, &value, 4);
    vmm::PortAccess a{port, true, std::span<std::uint8_t>(data)};
    return deliver_port(a);
  }

 protected:
  void kick() override {}

 private:
  const Program& program_;
  bool track_writes_;
  vmm::GuestRegs regs_;
  std::vector<std::uint64_t> dirty_;
  std::uint64_t tsc_ = 0;
};

// Machines over private RAM (a snapshot's file mapped copy-on-write, as KVM and the fake
// platform do) that all play `program`.
class FuzzPlatform final : public vmm::Platform {
 public:
  vmm::PlatformKind kind() const override { return vmm::PlatformKind::Fake; }
  std::unique_ptr<vmm::Machine> create(const vmm::MachineSpec& spec) override {
    return std::make_unique<FuzzMachine>(vmm::private_ram(spec), program, spec.track_writes);
  }
  std::string isolation() const override {
    return "nothing runs: the fuzz platform is for fuzzers";
  }
  Program program;
};

}  // namespace unifn::fuzz
