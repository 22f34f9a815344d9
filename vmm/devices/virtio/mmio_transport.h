// The virtio-mmio (version 2) transport: registers, feature negotiation, split virtqueues, snapshot
// state.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vmm/devices/mmio_device.h"
#include "vmm/devices/virtio/virtqueue.h"
#include "vmm/snapshot/persist.h"

namespace unifn::vmm::virtio {

struct TransportConfig {
  std::uint32_t device_id = 0;
  std::uint32_t vendor_id = 0x666e6975;  // "uinf" little-endian: unifn
  std::uint64_t device_features = 0;     // device-specific bits; VERSION_1 is always added
  std::uint16_t queues = 1;
  std::uint16_t queue_max = 256;
};

// The transport's snapshot state, with its device's own state inside as bytes (encoded by the
// device).
struct TransportState {
  static constexpr std::uint32_t kMagic = 0x4f494d56;  // "VMIO"
  static constexpr std::uint32_t kVersion = 1;
  static constexpr std::uint64_t kMaxDeviceBytes = 1u << 20;
  std::uint32_t device_id = 0;
  std::uint32_t status = 0;
  std::uint32_t device_features_sel = 0;
  std::uint32_t driver_features_sel = 0;
  std::uint64_t driver_features = 0;
  std::uint32_t queue_sel = 0;
  std::uint32_t interrupt_status = 0;
  std::vector<QueueState> queues;
  std::vector<std::uint8_t> device;
  bool operator==(const TransportState&) const = default;
  void write(ByteWriter& w) const;
  static TransportState read(ByteReader& r);
};

// A virtio device on the MMIO bus. Subclasses serve queue notifications and their config space;
// this class does everything else. Notifications are served synchronously inside the guest's
// QueueNotify write, so the used ring holds the answers when that write completes (the guest
// polls).
class MmioTransport : public MmioDevice {
 public:
  explicit MmioTransport(TransportConfig cfg);

  std::uint32_t device_id() const override { return cfg_.device_id; }
  void attach(Machine& machine, std::uint64_t base) override;
  IoResult access(Machine& machine, MmioAccess& a) override;
  // Snapshot state: a TransportState's bytes. check() decodes them and checks the device id, the
  // queue count and sizes, and the device's part (check_device).
  std::vector<std::uint8_t> save() const final;
  std::optional<std::string> check(std::span<const std::uint8_t> state) const final;
  void restore(std::span<const std::uint8_t> state) final;

  // One register access at `offset` within the window, without a Machine (tests, fuzzing,
  // access()). Registers take 32-bit accesses only; others read as zero and are ignored when
  // written.
  void mmio(GuestMemory& mem, std::uint64_t offset, bool write, std::span<std::uint8_t> data);
  std::uint32_t read32(GuestMemory& mem, std::uint64_t offset);
  void write32(GuestMemory& mem, std::uint64_t offset, std::uint32_t value);

  std::uint32_t status() const { return status_; }
  std::uint64_t driver_features() const { return driver_features_; }
  const QueueState& queue_state(std::size_t i) const { return queues_.at(i).state(); }
  std::size_t queue_count() const { return queues_.size(); }
  // The last thing the guest did wrong with the transport (ring layout, corrupt ring), for logs and
  // tests.
  const std::string& transport_error() const { return transport_error_; }

 protected:
  // Serves every chain pending on queue q.
  virtual void on_notify(GuestMemory& mem, SplitQueue& q, std::uint16_t index) = 0;
  // Fills `out` from the config space at `offset` (already checked to lie inside config_size()).
  virtual std::size_t config_size() const { return 0; }
  virtual void read_config(std::uint64_t offset, std::span<std::uint8_t> out) const {
    (void)offset;
    (void)out;
  }
  // Device-specific state: reset with the device, saved and restored with the transport's, in
  // the device's own encoding. check_device says what is wrong with such bytes (nullopt if
  // nothing); restore_device is called only with bytes that passed it, and cannot fail.
  virtual void reset_device() {}
  virtual std::vector<std::uint8_t> save_device() const { return {}; }
  virtual std::optional<std::string> check_device(std::span<const std::uint8_t> state) const {
    if (state.empty()) return std::nullopt;
    return "virtio device state: trailing bytes";
  }
  virtual void restore_device(std::span<const std::uint8_t> state) { (void)state; }

  void raise_interrupt(std::uint32_t bits) { interrupt_status_ |= bits; }
  // Marks the device broken until the driver resets it (DEVICE_NEEDS_RESET), with the reason.
  void needs_reset(std::string why);

 private:
  void reset();
  void write_reg(GuestMemory& mem, std::uint64_t offset, std::uint32_t v);
  std::uint32_t read_reg(std::uint64_t offset) const;
  SplitQueue* selected();
  const SplitQueue* selected() const;
  // What keeps this device from taking a decoded state, nullopt if nothing.
  std::optional<std::string> check_state(const TransportState& s) const;

  TransportConfig cfg_;
  std::uint64_t base_ = 0;
  std::uint64_t features_;  // what the device offers, VERSION_1 included
  std::uint32_t status_ = 0;
  std::uint32_t device_features_sel_ = 0;
  std::uint32_t driver_features_sel_ = 0;
  std::uint64_t driver_features_ = 0;
  std::uint32_t queue_sel_ = 0;
  std::uint32_t interrupt_status_ = 0;
  std::vector<SplitQueue> queues_;
  std::string transport_error_;
};

}  // namespace unifn::vmm::virtio
