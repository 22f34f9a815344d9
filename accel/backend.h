// The accelerator backend interface: operations on buffers that live in guest memory, checked by
// the device first.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <unifn/accel_abi.h>

namespace unifn::accel {

// A request's answer; the values are the status byte the guest receives.
enum class Status : std::uint8_t {
  Ok = UNIFN_ACCEL_OK,
  Error = UNIFN_ACCEL_ERR,
  BadMessage = UNIFN_ACCEL_BADMSG,
  NotSupported = UNIFN_ACCEL_NOTSUPP,
  InvalidSession = UNIFN_ACCEL_INVSESS,
};
std::string_view to_string(Status s);

struct Result {
  Status status = Status::Ok;
  std::string message;  // why, when status is not Ok
  bool ok() const { return status == Status::Ok; }
  static Result success() { return {}; }
  static Result fail(Status s, std::string why) { return {s, std::move(why)}; }
};

// Who an op runs for: every VM of one function shares one tenant (device_factory gives it), and a
// backend with one resource for all (the GPU) shares it fairly between tenants (FairGate).
using Tenant = std::uint64_t;

// C = alpha * A x B + beta * C, row-major. The device has checked every size against its buffer:
// a holds (m-1)*lda + k floats, b (k-1)*ldb + n, c (m-1)*ldc + n; lda >= k, ldb >= n, ldc >= n.
struct SgemmArgs {
  std::int64_t m = 0, n = 0, k = 0;
  float alpha = 1.0f, beta = 0.0f;
  std::span<const float> a;
  std::int64_t lda = 0;
  std::span<const float> b;
  std::int64_t ldb = 0;
  std::span<float> c;  // read too when beta != 0
  std::int64_t ldc = 0;
  Tenant tenant = 0;
};

// Min-max scaling of `in` into [low, high]; min and max of the input. out.size() == in.size() >= 1.
struct MinmaxArgs {
  std::span<const double> in;
  std::int32_t low = 0, high = 0;
  std::span<double> out;
  double* min = nullptr;  // one double each, in guest memory
  double* max = nullptr;
  Tenant tenant = 0;
};

enum class ImageOp : std::uint32_t {
  Grayscale = UNIFN_ACCEL_IMAGE_GRAYSCALE,
  GaussianBlur = UNIFN_ACCEL_IMAGE_GAUSSIAN_BLUR,
  Sobel = UNIFN_ACCEL_IMAGE_SOBEL,
  Resize = UNIFN_ACCEL_IMAGE_RESIZE,
};
std::string_view to_string(ImageOp op);

// 8-bit images, rows packed, channels interleaved. The device has checked the shapes against the
// op (accel_abi.h) and the buffers against the shapes; src and dst never overlap.
struct ImageArgs {
  ImageOp op = ImageOp::Grayscale;
  std::uint32_t width = 0, height = 0, channels = 0;
  std::span<const std::uint8_t> src;
  std::uint32_t out_width = 0, out_height = 0, out_channels = 0;
  std::span<std::uint8_t> dst;
  std::uint32_t ksize = 0;  // GaussianBlur: odd, 1..31
  float sigma = 0.0f;       // GaussianBlur: 0 derives it from ksize
  Tenant tenant = 0;
};

}  // namespace unifn::accel

namespace unifn::onnx_model {
struct Graph;
struct Tensor;
}  // namespace unifn::onnx_model

namespace unifn::accel {

// The SHA-256 of a model's bytes: how a snapshot names the models its device had registered.
using ModelDigest = std::array<std::uint8_t, 32>;

// A model checked once (ONNX's parser, checker and shape inference, then every node against what
// the executors run) and shared by every device that registered the same bytes.
struct LoadedModel {
  std::shared_ptr<const onnx_model::Graph> graph;
  ModelDigest digest{};
};

// One run of a loaded model. The device has checked the inputs' count, types and sizes against
// the model; the backend checks the rest (as the executor does) and fills `outputs` in the model's
// order.
struct ModelRunArgs {
  const onnx_model::Graph* graph = nullptr;
  std::span<const onnx_model::Tensor> inputs;
  std::vector<onnx_model::Tensor>* outputs = nullptr;
  Tenant tenant = 0;
};

// One way of running the operations: the CPU libraries, a GPU. Backends are shared by every VM
// of the daemon and called from their vCPU threads at once, so each op must be thread-safe.
// They read and write the guest's buffers in place; the spans stay valid only during the call.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  // Whether this machine can run it (the CUDA backend needs a GPU), and if not, why.
  virtual bool available() const = 0;
  virtual std::string unavailable_reason() const { return {}; }
  // What it runs on, for the daemon's log ("NVIDIA H100, cuBLAS"), or "".
  virtual std::string detail() const { return {}; }

  virtual Result noop() { return Result::success(); }
  virtual Result sgemm(const SgemmArgs& args) = 0;
  virtual Result minmax(const MinmaxArgs& args) = 0;
  virtual Result image(const ImageArgs& args) = 0;

  // Models. Parsing needs the ONNX library, which only the CPU module links: a backend that runs
  // models without parsing them (CUDA) forwards load_model and find_model to one that does.
  virtual bool runs_models() const { return false; }
  // Checks `bytes` and loads them, or finds them already loaded (by their digest).
  virtual Result load_model(std::span<const std::uint8_t> bytes, LoadedModel& out) {
    (void)bytes;
    (void)out;
    return Result::fail(Status::NotSupported, "this backend does not load models");
  }
  // A model this process loaded before, by its digest (a restored snapshot names its models so).
  virtual std::shared_ptr<const onnx_model::Graph> find_model(const ModelDigest& digest) {
    (void)digest;
    return nullptr;
  }
  virtual Result run_model(const ModelRunArgs& args) {
    (void)args;
    return Result::fail(Status::NotSupported, "this backend does not run models");
  }
};

}  // namespace unifn::accel
