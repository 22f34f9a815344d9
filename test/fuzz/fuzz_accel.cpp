// libFuzzer target: the input is a guest RAM image (rings, chains, arguments) fed to a virtio-accel device.
#include <cstdint>
#include <cstring>
#include <memory>

#include "cpu/cpu_backend.h"
#include "device.h"
#include "devices/virtio/virtio_mmio.h"
#include "fuzz_layout.h"
#include "reference/reference.h"

using namespace unifn;
namespace reg = vmm::virtio::reg;
namespace st = vmm::virtio::status;

namespace {

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::shared_ptr<accel::Backend> cpu = accel::make_cpu_backend();
  static const std::shared_ptr<accel::Backend> ref = accel::reference::make_backend();
  if (size < fuzz::kHeader) return 0;
  fuzz::Header h;
  std::memcpy(&h, data, sizeof h);
  vmm::GuestMemory mem(fuzz::kRam);
  mem.write(vmm::GuestAddr(fuzz::kRamAt),
            std::span(data + fuzz::kHeader, std::min<std::size_t>(size - fuzz::kHeader, fuzz::kRam - fuzz::kRamAt)));

  accel::DeviceOptions opts;
  opts.max_sessions = 4;
  accel::AccelDevice dev(h.mode & fuzz::kModeCpu ? cpu : ref, opts);
  // Mostly a proper queue of 64; sometimes whatever size the input asks for.
  init_driver(dev, mem, h.mode & fuzz::kModeOddQueue ? h.queue_num : fuzz::kQueue);
  dev.write32(mem, reg::kQueueNotify, 0);

  if (h.mode & fuzz::kModePokes) {
    // Register writes chosen by the input, then another notification.
    for (const auto& p : h.pokes) dev.write32(mem, p.offset & 0x1fc, p.value);
    dev.write32(mem, reg::kQueueNotify, 0);
  }
  if (h.mode & fuzz::kModeRestore) {
    // The state survives a save/restore round trip exactly, and the copy keeps serving.
    const auto state = dev.save();
    accel::AccelDevice copy(ref, opts);
    copy.restore(state);
    if (copy.save() != state) __builtin_trap();
    copy.write32(mem, reg::kQueueNotify, 0);
  }
  return 0;
}
