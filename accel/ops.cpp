// Argument checks for NOOP, BLAS_SGEMM, MINMAX and the OpenCV image ops, then the backend call.
#include "accel/ops.h"

#include <array>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <optional>

namespace unifn::accel {

namespace {

constexpr std::array<std::string_view, UNIFN_ACCEL_OP_COUNT> kOpNames = {"noop",
                                                                         "sgemm",
                                                                         "image-classification",
                                                                         "image-detection",
                                                                         "image-segmentation",
                                                                         "image-pose",
                                                                         "image-depth",
                                                                         "exec",
                                                                         "tf-model-new",
                                                                         "tf-model-destroy",
                                                                         "tf-model-register",
                                                                         "tf-model-unregister",
                                                                         "tf-session-load",
                                                                         "tf-session-run",
                                                                         "tf-session-delete",
                                                                         "minmax",
                                                                         "fpga-arraycopy",
                                                                         "fpga-mmult",
                                                                         "fpga-parallel",
                                                                         "fpga-vectoradd",
                                                                         "exec-with-resource",
                                                                         "torch-jitload-forward",
                                                                         "torch-sgemm",
                                                                         "opencv",
                                                                         "tflite-session-load",
                                                                         "tflite-session-run",
                                                                         "tflite-session-delete"};

}  // namespace

// What each op costs, in the unit its time grows with (budget.cpp measures each backend's rate on
// SGEMM and on a Gaussian blur). The other image ops are weighted by what they cost OpenCV per
// byte relative to a blur tap.
Work work_of(const SgemmArgs& a) {
  return {WorkKind::MultiplyAdds, static_cast<std::uint64_t>(a.m) *
                                      static_cast<std::uint64_t>(a.n) *
                                      static_cast<std::uint64_t>(a.k)};
}
Work work_of(const MinmaxArgs& a) {
  return {WorkKind::Taps, 3 * std::uint64_t{a.in.size()}};
}  // min and max, then scale
Work work_of(const ImageArgs& a) {
  const std::uint64_t in = std::uint64_t{a.width} * a.height * a.channels;
  switch (a.op) {
    case ImageOp::Grayscale:
      return {WorkKind::Taps, in * 4};
    case ImageOp::GaussianBlur:
      return {WorkKind::Taps, in * 2 * a.ksize};  // separable: a row pass and a column pass
    case ImageOp::Sobel:
      return {WorkKind::Taps,
              in * 54};    // two 3x3 kernels into 16-bit images, then their absolute sum
    case ImageOp::Resize:  // four input pixels per output pixel, and the whole input read (copied
                           // to a GPU) once
      return {WorkKind::Taps, std::uint64_t{a.out_width} * a.out_height * a.out_channels * 4 + in};
  }
  return {WorkKind::Taps, in};
}
std::string_view unit_name(WorkKind kind) {
  return kind == WorkKind::MultiplyAdds ? "multiply-adds" : "taps";
}

namespace {

std::string_view type_name(std::uint32_t t) {
  switch (t) {
    case UNIFN_ACCEL_ARG_RAW:
      return "raw";
    case UNIFN_ACCEL_ARG_INT32:
      return "int32";
    case UNIFN_ACCEL_ARG_INT64:
      return "int64";
    case UNIFN_ACCEL_ARG_FLOAT32:
      return "float32";
    case UNIFN_ACCEL_ARG_FLOAT64:
      return "float64";
    case UNIFN_ACCEL_ARG_UINT8:
      return "uint8";
    case UNIFN_ACCEL_ARG_UINT32:
      return "uint32";
    case UNIFN_ACCEL_ARG_STRUCT:
      return "struct";
  }
  return "unknown";
}

// A refusal: collected as an exception inside the decoders, returned as BADMSG.
struct Bad {
  std::string why;
};

template <typename... Args>
[[noreturn]] void bad(fmt::format_string<Args...> f, Args&&... args) {
  throw Bad{fmt::format(f, std::forward<Args>(args)...)};
}

// Checks one argument's declared type against what the op expects (RAW is accepted for anything).
template <typename Arg>
void check_type(std::string_view op, std::string_view dir, std::size_t i, const char* what,
                const Arg& a, std::uint32_t want) {
  if (a.type != UNIFN_ACCEL_ARG_RAW && a.type != want)
    bad("{}: {} argument {} ({}) is declared {}, {} expected", op, dir, i, what, type_name(a.type),
        type_name(want));
}

template <typename T>
T scalar(std::string_view op, std::span<const InArg> in, std::size_t i, const char* what,
         std::uint32_t type) {
  const auto& a = in[i];
  check_type(op, "read", i, what, a, type);
  if (a.bytes.size() != sizeof(T))
    bad("{}: read argument {} ({}) is {} bytes, {} expected", op, i, what, a.bytes.size(),
        sizeof(T));
  T v;
  std::memcpy(&v, a.bytes.data(), sizeof(T));
  return v;
}

template <typename T, typename Byte>
bool aligned(std::span<Byte> b) {
  // Safe: the pointer is only converted to an integer to test its alignment.
  return reinterpret_cast<std::uintptr_t>(b.data()) % alignof(T) == 0;
}

// A typed view of an argument buffer of exactly `count` elements.
template <typename T>
std::span<const T> in_array(std::string_view op, std::span<const InArg> in, std::size_t i,
                            const char* what, std::uint32_t type, std::uint64_t count) {
  const auto& a = in[i];
  check_type(op, "read", i, what, a, type);
  if (a.bytes.size() != count * sizeof(T))
    bad("{}: read argument {} ({}) is {} bytes, {} expected", op, i, what, a.bytes.size(),
        count * sizeof(T));
  if (!aligned<T>(a.bytes))
    bad("{}: read argument {} ({}) is not {}-byte aligned", op, i, what, alignof(T));
  // Safe: size and alignment checked above; the bytes are guest RAM that outlives the call.
  return {reinterpret_cast<const T*>(a.bytes.data()), static_cast<std::size_t>(count)};
}

template <typename T>
std::span<T> out_array(std::string_view op, std::span<const OutArg> out, std::size_t i,
                       const char* what, std::uint32_t type, std::uint64_t count) {
  const auto& a = out[i];
  check_type(op, "write", i, what, a, type);
  if (a.bytes.size() != count * sizeof(T))
    bad("{}: write argument {} ({}) is {} bytes, {} expected", op, i, what, a.bytes.size(),
        count * sizeof(T));
  if (!aligned<T>(a.bytes))
    bad("{}: write argument {} ({}) is not {}-byte aligned", op, i, what, alignof(T));
  // Safe: size and alignment checked above; the bytes are guest RAM that outlives the call.
  return {reinterpret_cast<T*>(a.bytes.data()), static_cast<std::size_t>(count)};
}

// How the device runs ops for one VM, handed through the decoders.
struct Run {
  const OpLimits& limits;
  Tenant tenant;
  const WorkGate& gate;
};

// The last check of every op: its work against the limit and the gate.
Result admit(std::string_view op, const std::string& shape, const Work& w, const Run& run) {
  if (w.units > run.limits.max_of(w.kind))
    return Result::fail(Status::Error,
                        fmt::format("{}: {} is {} {}, more than the {} one request may ask for", op,
                                    shape, w.units, unit_name(w.kind), run.limits.max_of(w.kind)));
  if (run.gate) {
    if (auto r = run.gate(w); !r.ok()) {
      r.message = fmt::format("{}: {}: {}", op, shape, r.message);
      return r;
    }
  }
  return Result::success();
}

void counts(std::string_view op, std::span<const InArg> in, std::span<const OutArg> out,
            std::size_t nr, std::size_t nw) {
  if (in.size() != nr || out.size() != nw)
    bad("{}: {} read and {} write arguments, {} and {} expected", op, in.size(), out.size(), nr,
        nw);
}

Result sgemm(Backend& b, std::span<const InArg> in, std::span<const OutArg> out, const Run& run) {
  constexpr std::string_view op = "sgemm";
  counts(op, in, out, 10, 1);
  SgemmArgs a;
  a.m = scalar<std::int64_t>(op, in, 0, "m", UNIFN_ACCEL_ARG_INT64);
  a.n = scalar<std::int64_t>(op, in, 1, "n", UNIFN_ACCEL_ARG_INT64);
  a.k = scalar<std::int64_t>(op, in, 2, "k", UNIFN_ACCEL_ARG_INT64);
  a.alpha = scalar<float>(op, in, 3, "alpha", UNIFN_ACCEL_ARG_FLOAT32);
  a.lda = scalar<std::int64_t>(op, in, 5, "lda", UNIFN_ACCEL_ARG_INT64);
  a.ldb = scalar<std::int64_t>(op, in, 7, "ldb", UNIFN_ACCEL_ARG_INT64);
  a.beta = scalar<float>(op, in, 8, "beta", UNIFN_ACCEL_ARG_FLOAT32);
  a.ldc = scalar<std::int64_t>(op, in, 9, "ldc", UNIFN_ACCEL_ARG_INT64);
  constexpr std::int64_t kMaxDim = 65536, kMaxLd = std::int64_t{1} << 30;
  for (auto [v, name] : {std::pair{a.m, "m"}, {a.n, "n"}, {a.k, "k"}})
    if (v < 1 || v > kMaxDim) bad("{}: {} = {} is outside 1..{}", op, name, v, kMaxDim);
  if (a.lda < a.k || a.lda > kMaxLd)
    bad("{}: lda = {} with k = {} (k <= lda <= 2^30 expected)", op, a.lda, a.k);
  if (a.ldb < a.n || a.ldb > kMaxLd)
    bad("{}: ldb = {} with n = {} (n <= ldb <= 2^30 expected)", op, a.ldb, a.n);
  if (a.ldc < a.n || a.ldc > kMaxLd)
    bad("{}: ldc = {} with n = {} (n <= ldc <= 2^30 expected)", op, a.ldc, a.n);
  // Each matrix spans (rows - 1) * ld + cols floats; with the bounds above this fits in 64 bits.
  auto span_of = [](std::int64_t rows, std::int64_t ld, std::int64_t cols) {
    return static_cast<std::uint64_t>((rows - 1) * ld + cols);
  };
  a.a = in_array<float>(op, in, 4, "A", UNIFN_ACCEL_ARG_FLOAT32, span_of(a.m, a.lda, a.k));
  a.b = in_array<float>(op, in, 6, "B", UNIFN_ACCEL_ARG_FLOAT32, span_of(a.k, a.ldb, a.n));
  a.c = out_array<float>(op, out, 0, "C", UNIFN_ACCEL_ARG_FLOAT32, span_of(a.m, a.ldc, a.n));
  a.tenant = run.tenant;
  if (auto r = admit(op, fmt::format("{}x{}x{}", a.m, a.n, a.k), work_of(a), run); !r.ok())
    return r;
  return b.sgemm(a);
}

Result minmax(Backend& b, std::span<const InArg> in, std::span<const OutArg> out, const Run& run) {
  constexpr std::string_view op = "minmax";
  counts(op, in, out, 4, 3);
  const auto ndata = scalar<std::int32_t>(op, in, 1, "ndata", UNIFN_ACCEL_ARG_INT32);
  if (ndata < 1) bad("{}: ndata = {} (at least 1 expected)", op, ndata);
  MinmaxArgs a;
  a.in = in_array<double>(op, in, 0, "indata", UNIFN_ACCEL_ARG_FLOAT64,
                          static_cast<std::uint64_t>(ndata));
  a.low = scalar<std::int32_t>(op, in, 2, "low_threshold", UNIFN_ACCEL_ARG_INT32);
  a.high = scalar<std::int32_t>(op, in, 3, "high_threshold", UNIFN_ACCEL_ARG_INT32);
  a.out = out_array<double>(op, out, 0, "outdata", UNIFN_ACCEL_ARG_FLOAT64,
                            static_cast<std::uint64_t>(ndata));
  a.min = out_array<double>(op, out, 1, "min", UNIFN_ACCEL_ARG_FLOAT64, 1).data();
  a.max = out_array<double>(op, out, 2, "max", UNIFN_ACCEL_ARG_FLOAT64, 1).data();
  a.tenant = run.tenant;
  if (auto r = admit(op, fmt::format("{} doubles", ndata), work_of(a), run); !r.ok()) return r;
  return b.minmax(a);
}

unifn_accel_image_params image_params(std::string_view op, std::span<const InArg> in) {
  const auto& a = in[0];
  check_type(op, "read", 0, "params", a, UNIFN_ACCEL_ARG_STRUCT);
  if (a.bytes.size() != sizeof(unifn_accel_image_params))
    bad("{}: read argument 0 (params) is {} bytes, {} expected", op, a.bytes.size(),
        sizeof(unifn_accel_image_params));
  unifn_accel_image_params p;
  std::memcpy(&p, a.bytes.data(), sizeof p);
  return p;
}

Result image(Backend& b, std::span<const InArg> in, std::span<const OutArg> out, const Run& run) {
  constexpr std::string_view op = "opencv";
  counts(op, in, out, 2, 1);
  const auto p = image_params(op, in);
  ImageArgs a;
  a.op = static_cast<ImageOp>(p.op);
  if (p.op < UNIFN_ACCEL_IMAGE_GRAYSCALE || p.op > UNIFN_ACCEL_IMAGE_RESIZE)
    bad("{}: image op {} is not one this device has", op, p.op);
  const std::string_view name = to_string(a.op);
  if (p._reserved != 0) bad("{} {}: the reserved field is {}, 0 expected", op, name, p._reserved);
  auto side = [&](std::uint32_t v, const char* what) {
    if (v < 1 || v > UNIFN_ACCEL_IMAGE_MAX_SIDE)
      bad("{} {}: {} = {} is outside 1..{}", op, name, what, v, UNIFN_ACCEL_IMAGE_MAX_SIDE);
  };
  side(p.width, "width");
  side(p.height, "height");
  side(p.out_width, "out_width");
  side(p.out_height, "out_height");
  if (p.channels < 1 || p.channels > 4)
    bad("{} {}: {} channels (1 to 4 expected)", op, name, p.channels);
  std::uint32_t want_c = p.channels;
  bool same_size = true;
  switch (a.op) {
    case ImageOp::Grayscale:
      if (p.channels != 3 && p.channels != 4)
        bad("{} {}: {} input channels (3 or 4 expected)", op, name, p.channels);
      want_c = 1;
      break;
    case ImageOp::GaussianBlur:
      if (p.ksize < 1 || p.ksize > 31 || p.ksize % 2 == 0)
        bad("{} {}: ksize {} (odd, 1 to 31 expected)", op, name, p.ksize);
      if (!std::isfinite(p.sigma) || p.sigma < 0 || p.sigma > 1000)
        bad("{} {}: sigma {} (0 to 1000 expected)", op, name, p.sigma);
      break;
    case ImageOp::Sobel:
      if (p.channels != 1)
        bad("{} {}: {} input channels (1 expected: convert to grayscale first)", op, name,
            p.channels);
      break;
    case ImageOp::Resize:
      same_size = false;
      break;
  }
  if (p.out_channels != want_c)
    bad("{} {}: out_channels {} ({} expected)", op, name, p.out_channels, want_c);
  if (same_size && (p.out_width != p.width || p.out_height != p.height))
    bad("{} {}: output {}x{} differs from the input's {}x{}", op, name, p.out_width, p.out_height,
        p.width, p.height);
  a.width = p.width;
  a.height = p.height;
  a.channels = p.channels;
  a.out_width = p.out_width;
  a.out_height = p.out_height;
  a.out_channels = p.out_channels;
  a.ksize = p.ksize;
  a.sigma = p.sigma;
  a.src = in_array<std::uint8_t>(op, in, 1, "src", UNIFN_ACCEL_ARG_UINT8,
                                 std::uint64_t{p.width} * p.height * p.channels);
  a.dst = out_array<std::uint8_t>(op, out, 0, "dst", UNIFN_ACCEL_ARG_UINT8,
                                  std::uint64_t{p.out_width} * p.out_height * p.out_channels);
  a.tenant = run.tenant;
  const std::string shape =
      a.op == ImageOp::GaussianBlur
          ? fmt::format("{}x{}x{} with ksize {}", a.width, a.height, a.channels, a.ksize)
      : a.op == ImageOp::Resize ? fmt::format("{}x{}x{} to {}x{}", a.width, a.height, a.channels,
                                              a.out_width, a.out_height)
                                : fmt::format("{}x{}x{}", a.width, a.height, a.channels);
  if (auto r = admit(fmt::format("{} {}", op, name), shape, work_of(a), run); !r.ok()) return r;
  return b.image(a);
}

}  // namespace

bool op_served(std::uint32_t op) {
  return op == UNIFN_ACCEL_OP_NOOP || op == UNIFN_ACCEL_OP_BLAS_SGEMM ||
         op == UNIFN_ACCEL_OP_MINMAX || op == UNIFN_ACCEL_OP_OPENCV;
}

std::uint32_t served_ops_mask() {
  std::uint32_t m = 0;
  for (std::uint32_t op = 0; op < 32; ++op)
    if (op_served(op)) m |= 1u << op;
  return m;
}

std::string_view op_name(std::uint32_t op) {
  if (op == UNIFN_ACCEL_OP_MODEL_RUN) return "model-run";
  return op < kOpNames.size() ? kOpNames[op] : "unknown";
}

std::string_view metric_name(std::uint32_t op, std::span<const InArg> in) {
  if (op != UNIFN_ACCEL_OP_OPENCV || in.empty() || in[0].bytes.size() < sizeof(std::uint32_t))
    return op_name(op);
  std::uint32_t sub;
  std::memcpy(&sub, in[0].bytes.data(), sizeof sub);
  switch (sub) {
    case UNIFN_ACCEL_IMAGE_GRAYSCALE:
      return "image-grayscale";
    case UNIFN_ACCEL_IMAGE_GAUSSIAN_BLUR:
      return "image-gaussian-blur";
    case UNIFN_ACCEL_IMAGE_SOBEL:
      return "image-sobel";
    case UNIFN_ACCEL_IMAGE_RESIZE:
      return "image-resize";
    default:
      return op_name(op);
  }
}

Result run_op(Backend& backend, std::uint32_t op, std::span<const InArg> in,
              std::span<const OutArg> out, const OpLimits& limits, Tenant tenant,
              const WorkGate& gate) {
  const Run run{limits, tenant, gate};
  try {
    switch (op) {
      case UNIFN_ACCEL_OP_NOOP:
        counts("noop", in, out, 0, 0);
        return backend.noop();
      case UNIFN_ACCEL_OP_BLAS_SGEMM:
        return sgemm(backend, in, out, run);
      case UNIFN_ACCEL_OP_MINMAX:
        return minmax(backend, in, out, run);
      case UNIFN_ACCEL_OP_OPENCV:
        return image(backend, in, out, run);
      default:
        return Result::fail(
            Status::NotSupported,
            fmt::format("op {} ({}) is not one this device serves", op, op_name(op)));
    }
  } catch (const Bad& b) {
    return Result::fail(Status::BadMessage, b.why);
  }
}

}  // namespace unifn::accel
