// KvmCpuState against a recording fake vCPU (no /dev/kvm): the order of the calls that capture and
// apply make, the immediate-exit entry that completes a pending IO or MMIO exit first (issue 10,
// item 6), the MSRs kept and the debug registers reset (item 5).
#include <catch2/catch.hpp>

#include <linux/kvm.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "vmm/platform/kvm/kvm_cpu_state.h"
#include "vmm/platform/kvm/vcpu_ops.h"
#include "vmm/x86/cpu.h"

using namespace unifn::vmm;

namespace {

// Records every call as one line; enter() models what KVM does with a pending PIO `out` on VT-x:
// the first KVM_RUN after the exit moves rip past the instruction, then immediate_exit makes it
// return EINTR before any guest instruction runs.
class RecordingVcpu final : public VcpuOps {
 public:
  std::vector<std::string> calls;
  kvm_run run{};
  kvm_regs r{};
  bool pending_out = false;            // an `out` (2 bytes) KVM has not completed yet
  bool exit_again = false;             // the completion ends in another exit (string I/O)
  std::set<std::uint32_t> unreadable;  // KVM_GET_MSRS refuses these
  std::set<std::uint32_t> unwritable;  // KVM_SET_MSRS refuses these
  std::map<std::uint32_t, std::uint64_t> msr_values;
  kvm_debugregs dregs{};

  kvm_run& run_state() override { return run; }
  bool enter() override {
    calls.push_back(fmt::format("run immediate_exit={}", run.immediate_exit));
    if (pending_out) {
      r.rip += 2;
      pending_out = false;
    }
    if (exit_again) {
      run.exit_reason = KVM_EXIT_IO;
      return true;
    }
    if (run.immediate_exit) return false;  // EINTR
    run.exit_reason = KVM_EXIT_HLT;
    return true;
  }
  kvm_regs regs() const override {
    log("get regs");
    return r;
  }
  void set_regs(const kvm_regs& v) override {
    calls.push_back("set regs");
    r = v;
  }
  kvm_sregs sregs() const override {
    log("get sregs");
    return {};
  }
  void set_sregs(const kvm_sregs&) override { calls.push_back("set sregs"); }
  std::vector<std::uint8_t> xsave() const override {
    log("get xsave");
    return std::vector<std::uint8_t>(4096);
  }
  void set_xsave(const std::vector<std::uint8_t>&) override { calls.push_back("set xsave"); }
  kvm_xcrs xcrs() const override {
    log("get xcrs");
    return {};
  }
  void set_xcrs(const kvm_xcrs&) override { calls.push_back("set xcrs"); }
  std::vector<kvm_msr_entry> msrs(const std::vector<std::uint32_t>& indices) const override {
    log("get msrs");
    std::vector<kvm_msr_entry> out;
    for (auto i : indices) {
      if (unreadable.contains(i)) break;  // KVM_GET_MSRS stops at the first refused MSR
      auto it = msr_values.find(i);
      out.push_back({i, 0, it == msr_values.end() ? 0 : it->second});
    }
    return out;
  }
  std::size_t set_msrs_prefix(const std::vector<kvm_msr_entry>& m) override {
    calls.push_back("set msrs");
    std::size_t n = 0;
    for (const auto& e : m) {
      if (unwritable.contains(e.index)) break;
      msr_values[e.index] = e.data;
      ++n;
    }
    return n;
  }
  void set_msrs(const std::vector<kvm_msr_entry>& m) override {
    if (set_msrs_prefix(m) != m.size()) throw std::runtime_error("KVM_SET_MSRS refused one");
  }
  kvm_vcpu_events events() const override {
    log("get events");
    return {};
  }
  void set_events(const kvm_vcpu_events&) override { calls.push_back("set events"); }
  kvm_debugregs debugregs() const override {
    log("get debugregs");
    return dregs;
  }
  void set_debugregs(const kvm_debugregs& d) override {
    calls.push_back("set debugregs");
    dregs = d;
  }

 private:
  void log(const char* what) const {
    const_cast<RecordingVcpu*>(this)->calls.push_back(what);
  }  // Safe: a test fake's log.
};

// The calls without the MSR verification detail, for order checks.
std::vector<std::string> without_msrs(const std::vector<std::string>& calls) {
  std::vector<std::string> out;
  for (const auto& c : calls)
    if (c != "get msrs" && c != "set msrs") out.push_back(c);
  return out;
}

}  // namespace

TEST_CASE("IO and MMIO exits complete on the next KVM_RUN, the others do not wait for one") {
  CHECK(exit_completes_on_next_run(KVM_EXIT_IO));
  CHECK(exit_completes_on_next_run(KVM_EXIT_MMIO));
  CHECK(exit_completes_on_next_run(KVM_EXIT_X86_RDMSR));
  CHECK(exit_completes_on_next_run(KVM_EXIT_X86_WRMSR));
  CHECK_FALSE(exit_completes_on_next_run(KVM_EXIT_HLT));
  CHECK_FALSE(exit_completes_on_next_run(KVM_EXIT_SHUTDOWN));
  CHECK_FALSE(exit_completes_on_next_run(KVM_EXIT_INTR));
  CHECK_FALSE(exit_completes_on_next_run(KVM_EXIT_INTERNAL_ERROR));
}

TEST_CASE(
    "capture after an IO exit first runs the vCPU once with immediate_exit set, then reads its "
    "state") {
  RecordingVcpu v;
  v.r.rip = 0x101000;  // at the `out` that parked the guest
  v.pending_out = true;
  auto s = KvmCpuState::capture(v, true);
  const std::vector<std::string> expected = {
      "run immediate_exit=1", "get regs", "get sregs", "get xsave", "get xcrs", "get events"};
  CHECK(without_msrs(v.calls) == expected);
  CHECK(v.calls.front() == "run immediate_exit=1");
  CHECK(s.regs.rip == 0x101002);     // past the `out`: a restored instance does not run it again
  CHECK(v.run.immediate_exit == 0);  // the next run() enters the guest for real
}

TEST_CASE("capture with no exit pending does not enter the vCPU") {
  RecordingVcpu v;
  v.r.rip = 0x101002;
  auto s = KvmCpuState::capture(v, false);
  CHECK(std::none_of(v.calls.begin(), v.calls.end(),
                     [](const std::string& c) { return c.starts_with("run"); }));
  CHECK(s.regs.rip == 0x101002);
}

TEST_CASE(
    "capture refuses a vCPU whose pending exit ends in another exit, and leaves immediate_exit "
    "clear") {
  RecordingVcpu v;
  v.exit_again = true;
  CHECK_THROWS_WITH(KvmCpuState::capture(v, true), Catch::Contains("cannot be saved"));
  CHECK(v.run.immediate_exit == 0);
  CHECK(v.calls == std::vector<std::string>{"run immediate_exit=1"});
}

TEST_CASE(
    "apply completes a pending exit before it sets anything, then resets the debug registers") {
  RecordingVcpu v;
  v.pending_out = true;
  v.dregs.dr7 = 0x403;  // a breakpoint a guest in ring 0 could have armed
  v.dregs.db[0] = 0x3000;
  KvmCpuState s;
  s.xsave.assign(4096, 0);
  s.regs.rip = 0x200000;
  s.apply(v, true);
  const std::vector<std::string> expected = {
      "run immediate_exit=1", "set sregs",    "set regs", "set xsave", "set xcrs", "set msrs",
      "set events",           "set debugregs"};
  CHECK(v.calls == expected);
  CHECK(v.r.rip == 0x200000);  // the completion moved the old rip, not the applied one
  CHECK(v.dregs.dr7 == dr::kDr7Reset);
  CHECK(v.dregs.dr6 == dr::kDr6Reset);
  CHECK(v.dregs.db[0] == 0);
  CHECK(v.dregs.db[3] == 0);

  RecordingVcpu quiet;
  s.apply(quiet, false);
  CHECK(quiet.calls.front() == "set sregs");
}

TEST_CASE(
    "capture keeps each MSR of the reset list that KVM reads and takes back, and apply writes them "
    "all") {
  RecordingVcpu v;
  for (const auto& m : guest_writable_msrs()) v.msr_values[m.index] = 0x1000 + m.index;
  v.unreadable = {msr::kTscAux, 0x6a0};          // this host has no RDTSCP, no CET
  v.unwritable = {0x1c4, msr::kKvmPollControl};  // read fine, refused back
  auto s = KvmCpuState::capture(v, false);
  std::set<std::uint32_t> kept;
  for (const auto& m : s.msrs) {
    kept.insert(m.index);
    CHECK(m.data == 0x1000 + m.index);
  }
  for (const auto& m : guest_writable_msrs()) {
    INFO(m.name);
    const bool dropped = v.unreadable.contains(m.index) || v.unwritable.contains(m.index);
    CHECK(kept.contains(m.index) == !dropped);
  }
  // What a guest changes is put back by apply().
  for (auto& [index, value] : v.msr_values) value = 0xdead;
  s.apply(v, false);
  for (auto index : kept) CHECK(v.msr_values[index] == 0x1000 + index);
  // And the state survives the state file.
  auto back = KvmCpuState::from_bytes(s.to_bytes());
  CHECK(back.msrs.size() == s.msrs.size());
}

TEST_CASE(
    "the reset list holds the system call entry points and KVM's paravirtual MSRs, and leaves the "
    "TSC alone") {
  std::set<std::uint32_t> list;
  for (const auto& m : guest_writable_msrs()) {
    INFO(m.name);
    CHECK(list.insert(m.index).second);  // no duplicates
  }
  for (std::uint32_t must : {msr::kStar,
                             msr::kLstar,
                             msr::kCstar,
                             msr::kFmask,
                             msr::kKernelGsBase,
                             0x174u,
                             0x175u,
                             0x176u,
                             msr::kKvmWallClock,
                             msr::kKvmSystemTime,
                             msr::kKvmWallClockNew,
                             msr::kKvmSystemTimeNew,
                             msr::kKvmAsyncPfEn,
                             msr::kKvmStealTime,
                             msr::kKvmPvEoiEn,
                             msr::kKvmPollControl,
                             msr::kKvmAsyncPfInt,
                             msr::kKvmAsyncPfAck,
                             msr::kTscAux,
                             0x277u,
                             0x3bu,
                             0x48u,
                             0x140u,
                             0x1d9u}) {
    INFO(std::hex << must);
    CHECK(list.contains(must));
  }
  for (const auto& x : msrs_not_reset()) {
    INFO(x.name << ": " << x.why);
    CHECK_FALSE(list.contains(x.index));
  }
  // The snapshot format allows up to 256 MSRs.
  CHECK(list.size() <= 256);
}

TEST_CASE(
    "a KVM vCPU state round-trips through its bytes into a fresh vCPU, and damaged bytes are "
    "refused",
    "[snapshot]") {
  RecordingVcpu a;
  for (const auto& m : guest_writable_msrs()) a.msr_values[m.index] = 0x2000 + m.index;
  a.r.rip = 0x401234;
  a.r.rsp = 0x7ff000;
  const auto bytes = KvmCpuState::capture(a, false).to_bytes();

  RecordingVcpu b;
  KvmCpuState::from_bytes(bytes).apply(b, false);
  CHECK(KvmCpuState::capture(b, false).to_bytes() == bytes);
  CHECK(b.r.rip == 0x401234);

  CHECK_THROWS_WITH(KvmCpuState::from_bytes(std::span(bytes).first(bytes.size() - 3)),
                    Catch::Contains("truncated"));
  auto trailing = bytes;
  trailing.push_back(0);
  CHECK_THROWS_WITH(KvmCpuState::from_bytes(trailing),
                    Catch::Contains("snapshot vCPU state: trailing bytes"));
  auto msrs = bytes;  // the MSR count follows regs, sregs, the XSAVE area (8 + 4096) and xcrs
  const std::size_t at = sizeof(kvm_regs) + sizeof(kvm_sregs) + 8 + 4096 + sizeof(kvm_xcrs);
  const std::uint64_t many = 100000;
  std::memcpy(msrs.data() + at, &many, sizeof many);
  CHECK_THROWS_WITH(KvmCpuState::from_bytes(msrs), Catch::Contains("100000 MSRs is more than the"));
  // A state of another platform never reaches the vCPU.
  CHECK_THROWS_AS(KvmCpuState::from_state(CpuState{PlatformKind::Sandbox, bytes}),
                  std::invalid_argument);
}
