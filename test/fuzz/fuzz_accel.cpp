// libFuzzer target: the input is a guest RAM image (rings, chains, arguments; fuzz_layout.h) fed to
// a virtio-accel device.
//
// Checked on every notification (besides "no crash, no sanitizer report"):
//   - it returns within $UNIFN_FUZZ_MAX_TRAP_MS (1000 by default) of a call that has 100 ms left
//     ("accel-time"): the device budgets each op against the deadline and stops between chains;
//   - once the call is cancelled (while its first op runs) no further op runs ("accel-cancel");
//   - a call whose deadline has passed runs no op at all ("accel-deadline").
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "accel/budget.h"
#include "accel/cpu/cpu_backend.h"
#include "accel/device.h"
#include "vmm/devices/virtio/virtio_mmio.h"
#include "test/fuzz/fuzz_common.h"
#include "test/fuzz/fuzz_layout.h"
#include "vmm/platform/fake/fake_machine.h"
#include "accel/reference/reference.h"

using namespace unifn;
using fuzz::finding;
namespace reg = vmm::virtio::reg;
namespace st = vmm::virtio::status;
using Clock = std::chrono::steady_clock;

namespace {

const long kMaxNotifyMs = [] {
  const char* e = std::getenv("UNIFN_FUZZ_MAX_TRAP_MS");
  return e ? std::atol(e) : 1000L;
}();
const bool kTrace = std::getenv("UNIFN_FUZZ_TRACE") != nullptr;  // print what the device refused
constexpr auto kCallLeft = std::chrono::milliseconds(100);
constexpr std::uint64_t kWindow = vmm::kMmioWindowBase;

void init_driver(accel::AccelDevice& dev, vmm::GuestMemory& mem, std::uint32_t queue_num) {
  dev.write32(mem, reg::kStatus, 0);
  dev.write32(mem, reg::kStatus, st::kAcknowledge | st::kDriver);
  dev.write32(mem, reg::kDriverFeaturesSel, 1);
  dev.write32(mem, reg::kDriverFeatures, 1);
  dev.write32(mem, reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk);
  dev.write32(mem, reg::kQueueNum, queue_num);
  dev.write32(mem, reg::kQueueDescLow, fuzz::kDesc);
  dev.write32(mem, reg::kQueueDriverLow, fuzz::kAvail);
  dev.write32(mem, reg::kQueueDeviceLow, fuzz::kUsed);
  dev.write32(mem, reg::kQueueReady, 1);
  dev.write32(mem, reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk | st::kDriverOk);
}

// One call's worth of the device's life: the ops it ran, and since when it must run none.
struct Call {
  std::uint32_t mode = 0;
  int ops = 0;
  int ops_after_cancel = 0;
  vmm::FakeMachine* machine = nullptr;
  void on_op() {
    ++ops;
    if (machine->cancelled()) ++ops_after_cancel;
    if (mode & fuzz::kModeCancel) machine->cancel();  // the client hangs up while this op runs
  }
};

// A QueueNotify as the guest's trap delivers it (through the machine), timed and checked.
void notify(accel::AccelDevice& dev, vmm::FakeMachine& machine, Call& call, const char* what) {
  std::uint32_t zero = 0;
  vmm::MmioAccess a{kWindow + reg::kQueueNotify, true,
                    std::span(reinterpret_cast<std::uint8_t*>(&zero), 4)};  // Safe: a u32 as bytes.
  const auto t0 = Clock::now();
  (void)dev.access(machine, a);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  if (ms > kMaxNotifyMs)
    finding("accel-time", std::string(what) + ": one notification of a call with " +
                              std::to_string(kCallLeft.count()) + " ms left took " +
                              std::to_string(ms) + " ms (bound " + std::to_string(kMaxNotifyMs) +
                              " ms)");
  if (call.ops_after_cancel)
    finding("accel-cancel", std::string(what) + ": " + std::to_string(call.ops_after_cancel) +
                                " op(s) ran after the call was cancelled");
  if ((call.mode & fuzz::kModeLate) && call.ops)
    finding("accel-deadline", std::string(what) + ": " + std::to_string(call.ops) +
                                  " op(s) ran after the call's deadline");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::shared_ptr<accel::Backend> cpu = accel::make_cpu_backend();
  static const std::shared_ptr<accel::Backend> ref = accel::reference::make_backend();
  // Measured once per process, as a daemon measures once per function.
  static const auto cpu_rates = std::make_shared<accel::WorkRates>(cpu);
  static const auto ref_rates = std::make_shared<accel::WorkRates>(ref);
  if (size < fuzz::kHeader) return 0;
  fuzz::Header h;
  std::memcpy(&h, data, sizeof h);
  vmm::FakeMachine machine(std::make_unique<vmm::GuestMemory>(fuzz::kRam));
  vmm::GuestMemory& mem = machine.memory();
  mem.write(vmm::GuestAddr(fuzz::kRamAt),
            std::span(data + fuzz::kHeader,
                      std::min<std::size_t>(size - fuzz::kHeader, fuzz::kRam - fuzz::kRamAt)));

  Call call{h.mode, 0, 0, &machine};
  const bool on_cpu = h.mode & fuzz::kModeCpu;
  accel::DeviceOptions opts;
  opts.max_sessions = 4;
  opts.rates = on_cpu ? cpu_rates : ref_rates;
  opts.on_op = [&call](std::string_view, std::string_view) { call.on_op(); };
  if (kTrace)
    opts.on_error = [](std::string_view why) {
      std::fprintf(stderr, "  refused: %.*s\n", static_cast<int>(why.size()), why.data());
    };
  accel::AccelDevice dev(on_cpu ? cpu : ref, opts);
  dev.attach(machine, kWindow);
  dev.begin_run(h.mode & fuzz::kModeLate ? Clock::now() - std::chrono::milliseconds(1)
                                         : Clock::now() + kCallLeft);
  // Mostly a proper queue of 64; sometimes whatever size the input asks for.
  init_driver(dev, mem, h.mode & fuzz::kModeOddQueue ? h.queue_num : fuzz::kQueue);
  notify(dev, machine, call, "the first notification");

  if (h.mode & fuzz::kModePokes) {
    // Register writes chosen by the input, then another notification.
    for (const auto& p : h.pokes) dev.write32(mem, p.offset & 0x1fc, p.value);
    notify(dev, machine, call, "a notification after register writes");
  }
  if (h.mode & fuzz::kModeRestore) {
    // The state survives a save/restore round trip exactly, and the copy keeps serving.
    const auto state = dev.save();
    // On the same backend: a snapshot with models restores only where models run.
    accel::AccelDevice copy(on_cpu ? cpu : ref, opts);
    copy.restore(state);
    if (copy.save() != state) __builtin_trap();
    copy.attach(machine, kWindow);
    copy.begin_run(h.mode & fuzz::kModeLate ? Clock::now() - std::chrono::milliseconds(1)
                                            : Clock::now() + kCallLeft);
    notify(copy, machine, call, "a restored device's notification");
  }
  return 0;
}
