// The process's loaded models: SHA-256 from OpenSSL, parsing by the ONNX library (accel/onnx).
#include "accel/cpu/model_cache.h"

#include <openssl/evp.h>

#include <cstddef>
#include <stdexcept>

#include "accel/onnx/model.h"

namespace unifn::accel {

ModelDigest ModelCache::digest_of(std::span<const std::uint8_t> bytes) {
  ModelDigest d{};
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), d.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != d.size())
    throw std::runtime_error("OpenSSL could not compute a SHA-256");
  return d;
}

std::shared_ptr<const onnx_model::Graph> ModelCache::find(const ModelDigest& digest) {
  std::lock_guard lock(mu_);
  for (auto it = entries_.begin(); it != entries_.end(); ++it)
    if (it->digest == digest) {
      entries_.splice(entries_.begin(), entries_, it);
      return it->graph;
    }
  return nullptr;
}

Result ModelCache::load(std::span<const std::uint8_t> bytes, LoadedModel& out) {
  out.digest = digest_of(bytes);
  if ((out.graph = find(out.digest))) return Result::success();
  // Parsed outside the lock: a large model takes a while, and other functions' models need not
  // wait. Two devices loading the same new model at once both parse it; the first stays.
  auto g = onnx_model::load(std::as_bytes(bytes));
  if (!g) return Result::fail(Status::Error, "the model is refused: " + g.error());
  std::lock_guard lock(mu_);
  for (const auto& e : entries_)
    if (e.digest == out.digest) {
      out.graph = e.graph;
      return Result::success();
    }
  entries_.push_front({out.digest, g.value()});
  if (entries_.size() > capacity_) entries_.pop_back();
  out.graph = g.value();
  return Result::success();
}

}  // namespace unifn::accel
