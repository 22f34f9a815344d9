// The backends this build has, probed once, and the choice of one for a function's allowed list.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "accel/backend.h"

namespace unifn::accel {

struct BackendInfo {
  std::string name;
  bool available = false;
  std::string reason;  // why it is unavailable
};

// The outcome of choosing a backend for one function.
struct Selection {
  std::shared_ptr<Backend> backend;  // null when none of the allowed backends can run here
  std::string preferred;             // the first allowed name (what the function asked for first)
  // Set when the backend is not the preferred one: "cuda is unavailable (no CUDA device ...); using
  // cpu".
  std::string fallback;
  // Set when backend is null: a sentence for the 503 answer and the log.
  std::string error;
  bool fell_back() const { return !fallback.empty(); }
};

class BackendRegistry {
 public:
  // Every backend compiled into this build ("cuda" where the toolkit was found, then "cpu"), probed
  // now.
  BackendRegistry();
  // Exactly these backends (tests).
  explicit BackendRegistry(std::vector<std::shared_ptr<Backend>> backends);
  // The registry of this process, built on first use.
  static const BackendRegistry& global();

  // The backend with this name, or null when this build has none by that name.
  std::shared_ptr<Backend> get(std::string_view name) const;
  std::vector<BackendInfo> list() const;
  // The first backend of `allowed` (in order of preference) that is available here.
  Selection select(std::span<const std::string> allowed) const;

 private:
  std::vector<std::shared_ptr<Backend>> backends_;
};

// Whether this build has the CUDA backend compiled in.
bool cuda_compiled();

}  // namespace unifn::accel
