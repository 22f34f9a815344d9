// The models a virtio-accel device's guest registered (accel_abi.h, "Models"): registration, runs,
// and their part of the device's snapshot state.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>

#include "accel/backend.h"
#include "accel/ops.h"
#include "vmm/memory/guest_memory.h"
#include "vmm/snapshot/byte_io.h"

namespace unifn::accel {

// What a snapshot keeps of one model: enough to find it again in this process (its digest) or,
// after a restart, to load it again from the guest's own copy.
struct ModelRecord {
  std::uint32_t session = 0;
  ModelDigest digest{};
  std::uint64_t addr = 0;  // where the guest keeps the bytes it registered
  std::uint32_t len = 0;
  bool operator==(const ModelRecord&) const = default;
};

struct ModelsState {
  std::uint32_t next_model = 1;
  std::map<std::uint32_t, ModelRecord> models;
  bool operator==(const ModelsState&) const = default;
  void write(vmm::ByteWriter& w) const;
  static ModelsState read(vmm::ByteReader& r);  // refuses id 0, repeats, sizes past the ABI's
};

// The most models one device holds at once.
inline constexpr std::size_t kMaxModelsPerDevice = 64;

class ModelTable {
 public:
  explicit ModelTable(std::shared_ptr<Backend> backend) : backend_(std::move(backend)) {}

  // CMD_MODEL_REGISTER: in[0] is the model (its guest address in in[0].addr), out[0] the
  // unifn_accel_model_io the device fills, out[1] (optional) the metadata lines.
  Result register_model(std::uint32_t session, std::span<const InArg> in,
                        std::span<const OutArg> out, std::uint32_t& written);
  Result unregister_model(std::uint32_t session, std::span<const InArg> in);
  // OP_MODEL_RUN. `mem` is read only to load a restored model again from the guest's copy.
  Result run(const vmm::GuestMemory& mem, std::uint32_t session, std::span<const InArg> in,
             std::span<const OutArg> out, const OpLimits& limits, Tenant tenant,
             const WorkGate& gate, std::uint32_t& written);

  void drop_session(std::uint32_t session);  // its models go with it
  void clear();
  std::size_t size() const { return models_.size(); }

  ModelsState state() const;
  // Takes a checked state; each model is found in this process by its digest when it can be, and
  // otherwise loaded from the guest's copy when first run.
  void restore(const ModelsState& s);

 private:
  struct Entry {
    ModelRecord record;
    std::shared_ptr<const onnx_model::Graph> graph;  // null until found again after a restore
    std::uint64_t madds = 0;
  };
  Result attach(const vmm::GuestMemory& mem, std::uint32_t id, Entry& e);

  std::shared_ptr<Backend> backend_;
  std::map<std::uint32_t, Entry> models_;
  std::uint32_t next_model_ = 1;
};

}  // namespace unifn::accel
