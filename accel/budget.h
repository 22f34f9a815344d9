// Whether an op can finish in the time its call has left: each backend's speed, measured once, per
// kind of work.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "accel/backend.h"
#include "accel/ops.h"

namespace unifn::accel {

using Clock = std::chrono::steady_clock;

// Work below this is never budgeted: it cannot hold a vCPU for long (0.1 ms of OpenBLAS on one
// core), so a measurement would be spent for nothing. The device still stops serving between
// chains once the deadline has passed.
inline constexpr std::uint64_t kUnbudgetedWork = std::uint64_t{1} << 20;

// How fast one backend does each kind of work. Measured the first time a budget needs it (the
// backend's own SGEMM and Gaussian blur on host buffers, grown until one run takes 2 ms, the
// faster of two runs counting), then kept for the life of the object. Thread-safe.
class WorkRates {
 public:
  explicit WorkRates(std::shared_ptr<Backend> backend);
  // Units per second; 0 when the measurement failed (no budget then; the per-op caps still hold).
  double per_second(WorkKind kind);
  // A rate known otherwise (tests): replaces the measurement.
  void set(WorkKind kind, double per_second);

 private:
  double measure(WorkKind kind);

  std::shared_ptr<Backend> backend_;
  std::mutex measuring_;
  std::array<std::atomic<double>, kWorkKinds> rate_;  // < 0: not measured yet
};

// Why `work` cannot finish before `deadline` at `per_second` units a second, or nothing when it
// can (or when the rate is unknown).
std::optional<std::string> over_budget(const Work& work, double per_second, Clock::time_point now,
                                       Clock::time_point deadline);

}  // namespace unifn::accel
