// A function VM's identity: everything its snapshot depends on, compared here and hashed once
// (SnapshotStore::key). Two configurations with equal identities can share a snapshot and a pool.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "guest/function_image.h"
#include "guest/function_vm.h"
#include "platform/platform.h"

namespace unifn::vmm {

struct VmIdentity {
  std::string platform;               // each platform has its own CPU state
  std::span<const std::uint8_t> image;  // the image's content (not owned: the image outlives this)
  std::uint64_t memory_bytes = 0;
  std::uint64_t max_body_bytes = 0;
  std::uint64_t devices = 0;
  std::string device_key;  // what the devices are and run on ("accel:cpu")
  std::string cmdline;
  std::vector<std::pair<std::string, std::string>> env;

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

  bool operator==(const VmIdentity& o) const {
    return platform == o.platform && std::ranges::equal(image, o.image) && memory_bytes == o.memory_bytes &&
           max_body_bytes == o.max_body_bytes && devices == o.devices && device_key == o.device_key &&
           cmdline == o.cmdline && env == o.env;
  }
};

}  // namespace unifn::vmm
