// The models this process has loaded, by the SHA-256 of their bytes: one parse per distinct model,
// however many VMs register it or are restored with it.
#pragma once

#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <span>

#include "accel/backend.h"

namespace unifn::accel {

class ModelCache {
 public:
  // The newest `capacity` models are kept after the last device lets go of them, so that a
  // function scaled to zero restores without parsing its model again.
  explicit ModelCache(std::size_t capacity = 32) : capacity_(capacity) {}

  static ModelDigest digest_of(std::span<const std::uint8_t> bytes);
  // The model by its digest (and marks it used), or null.
  std::shared_ptr<const onnx_model::Graph> find(const ModelDigest& digest);
  // Checks and loads `bytes` unless they are cached.
  Result load(std::span<const std::uint8_t> bytes, LoadedModel& out);

 private:
  struct Entry {
    ModelDigest digest;
    std::shared_ptr<const onnx_model::Graph> graph;
  };
  std::size_t capacity_;
  std::mutex mu_;
  std::list<Entry> entries_;  // newest use first
};

}  // namespace unifn::accel
