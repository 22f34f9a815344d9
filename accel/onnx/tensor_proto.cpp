// TensorProto to Tensor: float32 and int64, from raw_data (little-endian) or the typed repeated
// fields.
#include "accel/onnx/tensor_proto.h"

#include <cstring>

#include <fmt/format.h>

namespace unifn::onnx_model {

namespace {

template <class T, class Repeated>
Expected<std::vector<T>> data_of(const onnx::TensorProto& p, const Repeated& typed, std::int64_t n,
                                 const std::string& what) {
  std::vector<T> out(static_cast<std::size_t>(n));
  if (p.has_raw_data()) {
    const std::string& raw = p.raw_data();
    if (raw.size() != out.size() * sizeof(T))
      return Error{fmt::format("{} has {} bytes of raw data for {} elements of {} bytes", what,
                               raw.size(), n, sizeof(T))};
    if (!raw.empty())
      std::memcpy(out.data(), raw.data(), raw.size());  // x86-64 is little-endian, as raw_data is
    return out;
  }
  if (static_cast<std::int64_t>(typed.size()) != n)
    return Error{fmt::format("{} has {} values for {} elements", what, typed.size(), n)};
  std::copy(typed.begin(), typed.end(), out.begin());
  return out;
}

}  // namespace

Expected<Tensor> from_proto(const onnx::TensorProto& p, const std::string& what) {
  if (p.data_location() == onnx::TensorProto::EXTERNAL || p.external_data_size() > 0)
    return Error{
        fmt::format("{} refers to external data: only data held in the model is accepted", what)};
  if (p.has_segment()) return Error{fmt::format("{} is segmented, which is not supported", what)};
  std::vector<std::int64_t> dims(p.dims().begin(), p.dims().end());
  std::int64_t n = element_count(dims);
  if (n < 0)
    return Error{fmt::format("{} has shape {}: a negative dimension or more than {} elements", what,
                             shape_string(dims), kMaxTensorElements)};
  switch (p.data_type()) {
    case onnx::TensorProto::FLOAT: {
      auto d = data_of<float>(p, p.float_data(), n, what);
      if (!d) return Error{d.error()};
      return Tensor::floats(std::move(dims), std::move(d.value()));
    }
    case onnx::TensorProto::INT64: {
      auto d = data_of<std::int64_t>(p, p.int64_data(), n, what);
      if (!d) return Error{d.error()};
      return Tensor::ints(std::move(dims), std::move(d.value()));
    }
    default:
      return Error{
          fmt::format("{} has data type {}: only float32 (and int64 for shapes) is supported", what,
                      onnx::TensorProto::DataType_Name(
                          static_cast<onnx::TensorProto::DataType>(p.data_type())))};
  }
}

}  // namespace unifn::onnx_model
