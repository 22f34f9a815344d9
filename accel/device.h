// The virtio-accel device: one request queue, sessions that live in the snapshot, ops run on one
// backend.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "accel/backend.h"
#include "accel/budget.h"
#include "vmm/devices/virtio/mmio_transport.h"
#include "accel/models.h"
#include "accel/ops.h"

namespace unifn::accel {

struct DeviceOptions {
  std::uint32_t max_sessions = 64;
  OpLimits limits;  // work one request may ask for (an op runs to completion on the vCPU thread)
  // Who the ops run for, so that a shared GPU is shared fairly: device_factory gives each factory
  // (each function) its own when this is 0.
  Tenant tenant = 0;
  // The backend's measured speed, for the deadline budget: device_factory shares one between the
  // devices it makes; a device made without one measures its own when it first needs it.
  std::shared_ptr<WorkRates> rates;
  // Called after each op the backend ran (backend name, op name such as "sgemm" or
  // "image-sobel"), on the vCPU thread: for the unifn_accel_ops_total counter.
  std::function<void(std::string_view backend, std::string_view op)> on_op;
  // Called with the reason whenever a request is refused or fails: for the daemon's log.
  std::function<void(std::string_view what)> on_error;
};

// The device's part of its snapshot state: the open sessions and the next id to hand out, and the
// registered models.
struct AccelState {
  static constexpr std::uint32_t kVersion = 2;
  std::uint32_t next_session = 1;
  std::map<std::uint32_t, std::uint32_t> sessions;  // id -> flags
  ModelsState models;
  bool operator==(const AccelState&) const = default;
  void write(vmm::ByteWriter& w) const;
  // Refuses a session id 0 or one listed twice, and a model in a session that is not open.
  static AccelState read(vmm::ByteReader& r);
};

class AccelDevice final : public vmm::virtio::MmioTransport {
 public:
  explicit AccelDevice(std::shared_ptr<Backend> backend, DeviceOptions opts = {});

  // The call's deadline: ops that cannot finish before it are refused, and once it has passed
  // (or the machine's call is cancelled) the rest of a notification's chains are answered with
  // an error, not run. Called before every run of the guest; max() (the default) budgets nothing.
  void begin_run(std::chrono::steady_clock::time_point deadline) override { deadline_ = deadline; }
  // Notifications arrive here from the guest's machine, whose cancel() the device watches.
  vmm::IoResult access(vmm::Machine& machine, vmm::MmioAccess& a) override;

  Backend& backend() const { return *backend_; }
  // Open sessions: id -> the flags the guest opened it with.
  const std::map<std::uint32_t, std::uint32_t>& sessions() const { return sessions_; }
  const ModelTable& models() const { return models_; }
  std::uint64_t served() const { return served_; }    // requests answered OK
  std::uint64_t refused() const { return refused_; }  // requests answered with an error (or len 0)
  const std::string& last_error() const { return last_error_; }

 protected:
  void on_notify(vmm::GuestMemory& mem, vmm::virtio::SplitQueue& q, std::uint16_t index) override;
  std::size_t config_size() const override { return sizeof(unifn_accel_config); }
  void read_config(std::uint64_t offset, std::span<std::uint8_t> out) const override;
  void reset_device() override;
  std::vector<std::uint8_t> save_device() const override;
  std::optional<std::string> check_device(
      std::span<const std::uint8_t> state) const override;  // also: at most max_sessions
  void restore_device(std::span<const std::uint8_t> state) override;

 private:
  // Serves one chain; returns the status and sets `written` to the bytes the device wrote.
  Result serve(vmm::GuestMemory& mem, const vmm::virtio::Chain& chain, std::uint32_t& written);
  Result create_session(std::uint32_t flags, std::uint32_t& id);
  // Why no more chains may be served now (cancelled, past the deadline), if so.
  std::optional<std::string> interrupted() const;
  // The deadline budget: whether an op of this much work can finish in the time left.
  Result admit(const Work& w);
  void refuse(const std::string& why, std::uint64_t count = 1);

  std::shared_ptr<Backend> backend_;
  DeviceOptions opts_;
  WorkGate gate_;  // admit(), bound once
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  vmm::Machine* machine_ = nullptr;  // set while a guest access is served
  unifn_accel_config config_{};
  std::map<std::uint32_t, std::uint32_t> sessions_;
  std::uint32_t next_session_ = 1;
  ModelTable models_;
  std::uint64_t served_ = 0, refused_ = 0;
  std::string last_error_;
};

// What FunctionVmConfig::devices takes: a new AccelDevice per VM, all on the same backend, one
// tenant and one WorkRates (unless opts name them).
vmm::MmioDeviceFactory device_factory(std::shared_ptr<Backend> backend, DeviceOptions opts = {});

}  // namespace unifn::accel
