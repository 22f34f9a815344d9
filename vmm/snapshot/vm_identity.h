// A function VM's identity: everything its snapshot depends on, compared here and hashed once
// (SnapshotStore::key). Two configurations with equal identities can share a snapshot and a pool.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "vmm/guest/function_image.h"
#include "vmm/guest/function_vm.h"
#include "vmm/platform/platform.h"

namespace unifn::vmm {

// An image compared by its content, wherever its bytes are held.
struct ImageContent {
  std::span<const std::uint8_t> bytes;
  bool operator==(const ImageContent& o) const { return std::ranges::equal(bytes, o.bytes); }
};

struct VmIdentity {
  using Env = std::vector<std::pair<std::string, std::string>>;
  std::string platform;                 // each platform has its own CPU state
  std::span<const std::uint8_t> image;  // the image's content (not owned: the image outlives this)
  std::uint64_t memory_bytes = 0;
  std::uint64_t max_body_bytes = 0;
  std::uint64_t devices = 0;
  std::string device_key;  // what the devices are and run on ("accel:cpu")
  std::string cmdline;
  Env env;

  // Every field of FunctionVmConfig that reaches the guest, and nothing else (init_timeout only
  // bounds the cold boot; the device factories are named by device_key).
  static VmIdentity of(const FunctionImage& image, const FunctionVmConfig& cfg) {
    return VmIdentity{std::string(to_string(cfg.platform_or_default().kind())),
                      image.bytes,
                      cfg.memory_bytes,
                      cfg.max_body_bytes,
                      cfg.devices.size(),
                      cfg.device_key,
                      cfg.cmdline,
                      cfg.env};
  }

  // The one list of what the identity is made of: equality and the snapshot key (SnapshotStore::
  // key) both read it, so a member left out of it is left out of both, and the test that changes
  // each member (test_registry_reload) fails.
  auto fields() const {
    return std::tuple<const std::string&, ImageContent, std::uint64_t, std::uint64_t, std::uint64_t,
                      const std::string&, const std::string&, const Env&>(
        platform, ImageContent{image}, memory_bytes, max_body_bytes, devices, device_key, cmdline,
        env);
  }
  bool operator==(const VmIdentity& o) const { return fields() == o.fields(); }
};

}  // namespace unifn::vmm
