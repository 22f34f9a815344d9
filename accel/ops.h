// Decoding of each op's arguments (accel_abi.h) into typed, checked backend calls.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "backend.h"

namespace unifn::accel {

// One argument buffer of a request, already checked to lie in guest RAM.
struct InArg {
  std::uint32_t type = UNIFN_ACCEL_ARG_RAW;
  std::span<const std::uint8_t> bytes;
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

// Bounds on the work one request may ask for: an op cannot be interrupted once it runs, so this
// is what bounds the time a guest can hold its vCPU thread inside the device.
struct OpLimits {
  std::uint64_t max_sgemm_madds = std::uint64_t{1} << 36;  // m * n * k: 4096^3, about a second on 2 CPU cores
};

// Checks the arguments of `op` (counts, types, sizes, alignment, shapes) and runs it on the
// backend. Nothing is written to an output buffer unless every check passed.
Result run_op(Backend& backend, std::uint32_t op, std::span<const InArg> in, std::span<const OutArg> out,
              const OpLimits& limits = {});

}  // namespace unifn::accel
