// virtio-mmio v2 register file, device status and feature negotiation, queue setup, and its
// snapshot format.
#include "vmm/devices/virtio/mmio_transport.h"

#include <cstring>
#include <fmt/format.h>

#include "vmm/devices/virtio/virtio_mmio.h"

namespace unifn::vmm::virtio {

namespace {

void set_low(std::uint64_t& v, std::uint32_t lo) { v = (v & ~0xffffffffull) | lo; }
void set_high(std::uint64_t& v, std::uint32_t hi) {
  v = (v & 0xffffffffull) | (std::uint64_t{hi} << 32);
}
}  // namespace

MmioTransport::MmioTransport(TransportConfig cfg)
    : cfg_(cfg), features_(cfg.device_features | kFeatureVersion1) {
  if (cfg_.queues == 0) throw std::invalid_argument("a virtio device needs at least one queue");
  queues_.assign(cfg_.queues, SplitQueue(cfg_.queue_max));
}

void MmioTransport::attach(Machine& machine, std::uint64_t base) {
  (void)machine;
  base_ = base;
}

IoResult MmioTransport::access(Machine& machine, MmioAccess& a) {
  try {
    mmio(machine.memory(), a.addr - base_, a.write, a.data);
    return IoResult::next();
  } catch (const std::exception& e) {
    // A device fault must not take the daemon down: the guest that caused it stops instead.
    return IoResult::halt(
        {StopKind::Fault, 0,
         fmt::format("virtio device {} at {:#x}: {}", cfg_.device_id, base_, e.what())});
  }
}

void MmioTransport::needs_reset(std::string why) {
  transport_error_ = std::move(why);
  status_ |= status::kNeedsReset;
}

void MmioTransport::reset() {
  status_ = 0;
  device_features_sel_ = driver_features_sel_ = queue_sel_ = 0;
  driver_features_ = 0;
  interrupt_status_ = 0;
  for (auto& q : queues_) q.reset();
  reset_device();
}

SplitQueue* MmioTransport::selected() {
  return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr;
}
const SplitQueue* MmioTransport::selected() const {
  return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr;
}

std::uint32_t MmioTransport::read32(GuestMemory& mem, std::uint64_t offset) {
  std::uint8_t b[4] = {};
  mmio(mem, offset, false, b);
  std::uint32_t v;
  std::memcpy(&v, b, 4);
  return v;
}

void MmioTransport::write32(GuestMemory& mem, std::uint64_t offset, std::uint32_t value) {
  std::uint8_t b[4];
  std::memcpy(b, &value, 4);
  mmio(mem, offset, true, b);
}

void MmioTransport::mmio(GuestMemory& mem, std::uint64_t offset, bool write,
                         std::span<std::uint8_t> data) {
  if (offset >= reg::kConfig) {
    // Config space: read-only, any width.
    const std::uint64_t at = offset - reg::kConfig;
    if (write) return;
    std::fill(data.begin(), data.end(), 0);
    if (at < config_size() && data.size() <= config_size() - at) read_config(at, data);
    return;
  }
  if (data.size() != 4 || offset % 4) {
    if (!write) std::fill(data.begin(), data.end(), 0);
    return;
  }
  if (write) {
    std::uint32_t v;
    std::memcpy(&v, data.data(), 4);
    write_reg(mem, offset, v);
  } else {
    const std::uint32_t v = read_reg(offset);
    std::memcpy(data.data(), &v, 4);
  }
}

std::uint32_t MmioTransport::read_reg(std::uint64_t offset) const {
  const SplitQueue* q = selected();
  switch (offset) {
    case reg::kMagic:
      return kMagicValue;
    case reg::kVersion:
      return kVersion2;
    case reg::kDeviceId:
      return cfg_.device_id;
    case reg::kVendorId:
      return cfg_.vendor_id;
    case reg::kDeviceFeatures:
      return device_features_sel_ < 2
                 ? static_cast<std::uint32_t>(features_ >> (32 * device_features_sel_))
                 : 0;
    case reg::kQueueNumMax:
      return q ? q->num_max() : 0;
    case reg::kQueueReady:
      return q ? q->state().ready : 0;
    case reg::kInterruptStatus:
      return interrupt_status_;
    case reg::kStatus:
      return status_;
    case reg::kShmLenLow:
    case reg::kShmLenHigh:
      return 0xffffffffu;  // no shared memory regions
    case reg::kConfigGeneration:
      return 0;  // the config space never changes
    default:
      return 0;
  }
}

void MmioTransport::write_reg(GuestMemory& mem, std::uint64_t offset, std::uint32_t v) {
  SplitQueue* q = selected();
  // Queue registers may only change while the queue is not live.
  const bool q_writable = q && !q->state().ready;
  switch (offset) {
    case reg::kDeviceFeaturesSel:
      device_features_sel_ = v;
      return;
    case reg::kDriverFeaturesSel:
      driver_features_sel_ = v;
      return;
    case reg::kDriverFeatures:
      if (driver_features_sel_ == 0)
        set_low(driver_features_, v);
      else if (driver_features_sel_ == 1)
        set_high(driver_features_, v);
      return;
    case reg::kQueueSel:
      queue_sel_ = v;
      return;
    case reg::kQueueNum:
      // Sizes above QueueNumMax are ignored (the queue keeps its size and QueueReady will say no).
      if (q_writable && v <= q->num_max()) q->state().num = static_cast<std::uint16_t>(v);
      return;
    case reg::kQueueDescLow:
      if (q_writable) set_low(q->state().desc, v);
      return;
    case reg::kQueueDescHigh:
      if (q_writable) set_high(q->state().desc, v);
      return;
    case reg::kQueueDriverLow:
      if (q_writable) set_low(q->state().avail, v);
      return;
    case reg::kQueueDriverHigh:
      if (q_writable) set_high(q->state().avail, v);
      return;
    case reg::kQueueDeviceLow:
      if (q_writable) set_low(q->state().used, v);
      return;
    case reg::kQueueDeviceHigh:
      if (q_writable) set_high(q->state().used, v);
      return;
    case reg::kQueueReady:
      if (!q) return;
      if (v == 0) {
        q->state().ready = 0;
      } else if (!q->state().ready) {
        // Refused (reads back 0) unless the rings the driver described are usable.
        if (auto why = q->check_layout(mem); !why.empty()) {
          transport_error_ = fmt::format("queue {}: {}", queue_sel_, why);
          return;
        }
        q->state().ready = 1;
        q->state().last_avail = q->state().used_idx =
            0;  // a fresh queue starts at index 0 (virtio 2.7)
      }
      return;
    case reg::kInterruptAck:
      interrupt_status_ &= ~v;
      return;
    case reg::kStatus:
      if (v == 0) {
        reset();
        return;
      }
      // FEATURES_OK sticks only when the driver accepted a subset of ours that includes VERSION_1.
      if ((v & status::kFeaturesOk) && !(status_ & status::kFeaturesOk) &&
          ((driver_features_ & ~features_) != 0 || !(driver_features_ & kFeatureVersion1))) {
        v &= ~status::kFeaturesOk;
      }
      status_ = (status_ & status::kNeedsReset) | v;
      return;
    case reg::kQueueNotify: {
      if (v >= queues_.size()) return;
      constexpr std::uint32_t live = status::kFeaturesOk | status::kDriverOk;
      if ((status_ & live) != live || (status_ & status::kNeedsReset)) return;
      SplitQueue& nq = queues_[v];
      if (!nq.state().ready) return;
      // Restored state is re-checked too: nothing reaches memory through a layout that was never
      // validated.
      if (auto why = nq.check_layout(mem); !why.empty()) {
        needs_reset(fmt::format("queue {}: {}", v, why));
        return;
      }
      try {
        on_notify(mem, nq, static_cast<std::uint16_t>(v));
      } catch (const QueueError& e) {
        needs_reset(fmt::format("queue {}: {}", v, e.what()));
      }
      return;
    }
    default:
      return;  // read-only or unknown registers ignore writes
  }
}

void TransportState::write(ByteWriter& w) const {
  w.pod(kMagic);
  w.pod(kVersion);
  w.pod(device_id);
  w.pod(status);
  w.pod(device_features_sel);
  w.pod(driver_features_sel);
  w.pod(driver_features);
  w.pod(queue_sel);
  w.pod(interrupt_status);
  w.pod(static_cast<std::uint32_t>(queues.size()));
  for (const auto& q : queues) w.pod(q);
  w.blob(device);
}

TransportState TransportState::read(ByteReader& r) {
  if (r.pod<std::uint32_t>() != kMagic) throw std::runtime_error("virtio-mmio state: bad magic");
  read_version(r, kVersion, "virtio-mmio state");
  TransportState s;
  s.device_id = r.pod<std::uint32_t>();
  s.status = r.pod<std::uint32_t>();
  s.device_features_sel = r.pod<std::uint32_t>();
  s.driver_features_sel = r.pod<std::uint32_t>();
  s.driver_features = r.pod<std::uint64_t>();
  s.queue_sel = r.pod<std::uint32_t>();
  s.interrupt_status = r.pod<std::uint32_t>();
  const auto n = r.pod<std::uint32_t>();
  if (n > UINT16_MAX)
    throw std::runtime_error(
        fmt::format("virtio-mmio state: {} queues is more than a transport has", n));
  for (std::uint32_t i = 0; i < n; ++i) s.queues.push_back(r.pod<QueueState>());
  s.device = r.blob(kMaxDeviceBytes);
  return s;
}

std::vector<std::uint8_t> MmioTransport::save() const {
  TransportState s{cfg_.device_id,   status_,    device_features_sel_, driver_features_sel_,
                   driver_features_, queue_sel_, interrupt_status_,    {},
                   save_device()};
  for (const auto& q : queues_) s.queues.push_back(q.state());
  return encode(s);
}

std::optional<std::string> MmioTransport::check_state(const TransportState& s) const {
  if (s.device_id != cfg_.device_id)
    return fmt::format("virtio-mmio state is for device id {}, this device is {}", s.device_id,
                       cfg_.device_id);
  if (s.queues.size() != queues_.size())
    return fmt::format("virtio-mmio state has {} queues, the device {}", s.queues.size(),
                       queues_.size());
  for (const auto& q : s.queues)
    if (q.num > cfg_.queue_max)
      return fmt::format("virtio-mmio state: queue size {} is above the maximum {}", q.num,
                         cfg_.queue_max);
  return check_device(s.device);
}

std::optional<std::string> MmioTransport::check(std::span<const std::uint8_t> state) const {
  try {
    return check_state(decode<TransportState>(state, "virtio-mmio state"));
  } catch (const std::runtime_error& e) {
    return e.what();
  }
}

void MmioTransport::restore(std::span<const std::uint8_t> state) {
  const auto s = decode<TransportState>(state, "virtio-mmio state");
  if (auto bad = check_state(s)) throw std::runtime_error(*bad);
  // Checked whole: from here nothing fails.
  restore_device(s.device);
  status_ = s.status;
  device_features_sel_ = s.device_features_sel;
  driver_features_sel_ = s.driver_features_sel;
  driver_features_ = s.driver_features;
  queue_sel_ = s.queue_sel;
  interrupt_status_ = s.interrupt_status;
  for (std::size_t i = 0; i < queues_.size(); ++i) queues_[i].state() = s.queues[i];
  transport_error_.clear();
}

}  // namespace unifn::vmm::virtio
