// Decoding of each op's arguments (accel_abi.h) into typed, checked backend calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include "accel/backend.h"

namespace unifn::accel {

// One argument buffer of a request, already checked to lie in guest RAM.
struct InArg {
  std::uint32_t type = UNIFN_ACCEL_ARG_RAW;
  std::span<const std::uint8_t> bytes;
  std::uint64_t addr = 0;  // its guest address (a registered model is found there again)
};
struct OutArg {
  std::uint32_t type = UNIFN_ACCEL_ARG_RAW;
  std::span<std::uint8_t> bytes;
};

// Whether this build serves op code `op` (on every backend), and all of them as a bit mask.
bool op_served(std::uint32_t op);
std::uint32_t served_ops_mask();
// vAccel's name of an op code ("noop", "sgemm", "minmax", "opencv", ...), "unknown" past the table.
std::string_view op_name(std::uint32_t op);
// What a metric calls one served op: the op's name, or "image-<op>" for the image ops.
std::string_view metric_name(std::uint32_t op, std::span<const InArg> in);

// What an op costs grows with one of these: SGEMM with its multiply-adds; the image ops and MINMAX
// with their taps (one input element read for one kernel weight or one pass).
enum class WorkKind : std::uint8_t { MultiplyAdds, Taps };
inline constexpr std::size_t kWorkKinds = 2;
std::string_view unit_name(WorkKind kind);  // "multiply-adds", "taps"

struct Work {
  WorkKind kind = WorkKind::Taps;
  std::uint64_t units = 0;
};

// The estimate of each op, from its checked arguments (defined beside the op table in ops.cpp).
Work work_of(const SgemmArgs& a);
Work work_of(const MinmaxArgs& a);
Work work_of(const ImageArgs& a);

// Bounds on the work one request may ask for: an op cannot be interrupted once it runs, so this
// is what bounds the time a guest can hold its vCPU thread inside one op.
struct OpLimits {
  std::uint64_t max_sgemm_madds = std::uint64_t{1}
                                  << 36;  // m * n * k: 4096^3, 1.5 s of OpenBLAS on 2 cores
  std::uint64_t max_taps = std::uint64_t{1} << 34;  // image ops, MINMAX: as long again in OpenCV
  std::uint64_t max_of(WorkKind kind) const {
    return kind == WorkKind::MultiplyAdds ? max_sgemm_madds : max_taps;
  }
};

// Asked with an op's work once its arguments passed every check and the limits, just before the
// backend runs it: a failure refuses the op, which then does not run (the device's deadline
// budget).
using WorkGate = std::function<Result(const Work&)>;

// Checks the arguments of `op` (counts, types, sizes, alignment, shapes) and its work against
// `limits` and `gate`, and runs it on the backend for `tenant`. Nothing is written to an output
// buffer unless every check passed.
Result run_op(Backend& backend, std::uint32_t op, std::span<const InArg> in,
              std::span<const OutArg> out, const OpLimits& limits = {}, Tenant tenant = 0,
              const WorkGate& gate = {});

}  // namespace unifn::accel
