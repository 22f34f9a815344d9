// Model registration and runs: every field of unifn_accel_model_io and every buffer checked
// against the model before the backend runs it; nothing written unless the whole run succeeded.
#include "accel/models.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "accel/model_work.h"
#include "accel/onnx/model.h"
#include "accel/onnx/tensor.h"

namespace unifn::accel {

namespace {

using onnx_model::DType;
using onnx_model::Tensor;

Result bad(std::string why) { return Result::fail(Status::BadMessage, std::move(why)); }

std::uint32_t arg_type(DType t) {
  return t == DType::Float ? UNIFN_ACCEL_ARG_FLOAT32 : UNIFN_ACCEL_ARG_INT64;
}
std::string_view arg_type_name(std::uint32_t t) {
  return t == UNIFN_ACCEL_ARG_FLOAT32 ? "float32" : t == UNIFN_ACCEL_ARG_INT64 ? "int64" : "?";
}

unifn_accel_model_io read_io(const InArg& a) {
  unifn_accel_model_io io;
  std::memcpy(&io, a.bytes.data(), sizeof io);  // the caller checked the size
  return io;
}

std::size_t tensor_bytes(const Tensor& t) {
  return t.type == DType::Float ? t.f.size() * sizeof(float) : t.i.size() * sizeof(std::int64_t);
}

std::string to_hex(const ModelDigest& d) { return fmt::format("{:02x}", fmt::join(d, "")); }

// A declared value as the ABI describes it (-1 for an open size); false past the ABI's rank.
bool describe(const onnx_model::Value& v, unifn_accel_tensor_desc& d) {
  d = {};
  d.type = arg_type(v.type);
  if (v.dims.size() > UNIFN_ACCEL_MODEL_MAX_RANK) return false;
  d.rank = static_cast<std::uint32_t>(v.dims.size());
  for (std::size_t i = 0; i < v.dims.size(); ++i) d.dims[i] = v.shape_known ? v.dims[i].value : -1;
  return true;
}

std::string metadata_text(const onnx_model::Graph& g) {
  std::string s;
  for (const auto& [k, v] : g.metadata) s += k + "=" + v + "\n";
  return s;
}

}  // namespace

void ModelsState::write(vmm::ByteWriter& w) const {
  w.pod(next_model);
  w.pod(static_cast<std::uint32_t>(models.size()));
  for (const auto& [id, m] : models) {
    w.pod(id);
    w.pod(m.session);
    w.pod(m.digest);
    w.pod(m.addr);
    w.pod(m.len);
  }
}

ModelsState ModelsState::read(vmm::ByteReader& r) {
  ModelsState s;
  s.next_model = r.pod<std::uint32_t>();
  const auto count = r.pod<std::uint32_t>();
  if (count > kMaxModelsPerDevice)
    throw std::runtime_error(fmt::format("virtio-accel state: {} models, more than the {} allowed",
                                         count, kMaxModelsPerDevice));
  for (std::uint32_t i = 0; i < count; ++i) {
    const auto id = r.pod<std::uint32_t>();
    ModelRecord m;
    m.session = r.pod<std::uint32_t>();
    m.digest = r.pod<ModelDigest>();
    m.addr = r.pod<std::uint64_t>();
    m.len = r.pod<std::uint32_t>();
    if (id == 0 || m.len == 0 || m.len > UNIFN_ACCEL_MODEL_MAX_BYTES ||
        !s.models.emplace(id, m).second)
      throw std::runtime_error(fmt::format(
          "virtio-accel state: model id {} is invalid, repeated or of an impossible size", id));
  }
  return s;
}

Result ModelTable::register_model(std::uint32_t session, std::span<const InArg> in,
                                  std::span<const OutArg> out, std::uint32_t& written) {
  if (in.size() != 1 || out.empty() || out.size() > 2 ||
      out[0].bytes.size() != sizeof(unifn_accel_model_io))
    return bad(fmt::format(
        "takes [the model's bytes] to read, and [unifn_accel_model_io ({} bytes)] and optionally "
        "[metadata] to write",
        sizeof(unifn_accel_model_io)));
  const auto bytes = in[0].bytes;
  if (bytes.empty() || bytes.size() > UNIFN_ACCEL_MODEL_MAX_BYTES)
    return bad(fmt::format("the model is {} bytes; 1 to {} are accepted", bytes.size(),
                           UNIFN_ACCEL_MODEL_MAX_BYTES));
  if (models_.size() >= kMaxModelsPerDevice)
    return Result::fail(Status::Error,
                        fmt::format("all {} models of this device are registered; unregister one "
                                    "first",
                                    kMaxModelsPerDevice));
  if (!backend_->runs_models())
    return Result::fail(Status::NotSupported,
                        fmt::format("the {} backend does not run models", backend_->name()));
  LoadedModel m;
  if (auto r = backend_->load_model(bytes, m); !r.ok()) return r;
  const auto& g = *m.graph;
  if (g.inputs.size() > UNIFN_ACCEL_MODEL_MAX_IO || g.outputs.size() > UNIFN_ACCEL_MODEL_MAX_IO)
    return Result::fail(Status::Error,
                        fmt::format("the model has {} inputs and {} outputs; a run carries {} of "
                                    "each at most",
                                    g.inputs.size(), g.outputs.size(), UNIFN_ACCEL_MODEL_MAX_IO));
  unifn_accel_model_io io{};
  io.nr_inputs = static_cast<std::uint32_t>(g.inputs.size());
  io.nr_outputs = static_cast<std::uint32_t>(g.outputs.size());
  for (std::size_t i = 0; i < g.inputs.size(); ++i)
    if (!describe(g.values[static_cast<std::size_t>(g.inputs[i])], io.inputs[i]))
      return Result::fail(Status::Error, fmt::format("input {} has a rank above the {} a run "
                                                     "carries",
                                                     i, UNIFN_ACCEL_MODEL_MAX_RANK));
  for (std::size_t i = 0; i < g.outputs.size(); ++i)
    if (!describe(g.values[static_cast<std::size_t>(g.outputs[i])], io.outputs[i]))
      return Result::fail(Status::Error, fmt::format("output {} has a rank above the {} a run "
                                                     "carries",
                                                     i, UNIFN_ACCEL_MODEL_MAX_RANK));
  const std::string meta = metadata_text(g);
  if (out.size() == 2 && meta.size() + 1 > out[1].bytes.size())
    return bad(fmt::format("the model's metadata needs {} bytes, the buffer holds {}",
                           meta.size() + 1, out[1].bytes.size()));
  std::uint32_t id = next_model_;
  while (id == 0 || models_.contains(id)) ++id;
  next_model_ = id + 1;
  io.model_id = id;
  models_[id] = Entry{{session, m.digest, in[0].addr, static_cast<std::uint32_t>(bytes.size())},
                      m.graph,
                      model_multiply_adds(g)};
  std::memcpy(out[0].bytes.data(), &io, sizeof io);
  written = sizeof io;
  if (out.size() == 2) {
    std::memcpy(out[1].bytes.data(), meta.data(), meta.size());
    out[1].bytes[meta.size()] = 0;
    written += static_cast<std::uint32_t>(meta.size() + 1);
  }
  return Result::success();
}

Result ModelTable::unregister_model(std::uint32_t session, std::span<const InArg> in) {
  if (in.size() != 1 || in[0].bytes.size() != 4) return bad("takes [u32 model id] to read");
  std::uint32_t id = 0;
  std::memcpy(&id, in[0].bytes.data(), 4);
  auto it = models_.find(id);
  if (it == models_.end() || it->second.record.session != session)
    return Result::fail(Status::Error, fmt::format("no model {} in session {}", id, session));
  models_.erase(it);
  return Result::success();
}

Result ModelTable::attach(const vmm::GuestMemory& mem, std::uint32_t id, Entry& e) {
  if (e.graph) return Result::success();
  const auto& rec = e.record;
  if ((e.graph = backend_->find_model(rec.digest))) {
    e.madds = model_multiply_adds(*e.graph);
    return Result::success();
  }
  // Registered before this process started (a snapshot from an earlier daemon): the guest's copy.
  const vmm::GuestAddr at(rec.addr);
  if (!mem.user_contains(at, rec.len))
    return Result::fail(Status::Error,
                        fmt::format("model {} was registered from {} bytes at guest address {:#x}, "
                                    "which are no longer in the guest's memory",
                                    id, rec.len, rec.addr));
  LoadedModel m;
  if (auto r = backend_->load_model(mem.span(at, rec.len, "registered model"), m); !r.ok())
    return Result::fail(r.status, fmt::format("model {} cannot be loaded again from guest address "
                                              "{:#x}: {}",
                                              id, rec.addr, r.message));
  if (m.digest != rec.digest)
    return Result::fail(Status::Error,
                        fmt::format("model {} cannot be loaded again: the {} bytes at guest "
                                    "address {:#x} hash to {}, not to the {} registered (the "
                                    "guest changed them)",
                                    id, rec.len, rec.addr, to_hex(m.digest), to_hex(rec.digest)));
  e.graph = m.graph;
  e.madds = model_multiply_adds(*e.graph);
  return Result::success();
}

Result ModelTable::run(const vmm::GuestMemory& mem, std::uint32_t session,
                       std::span<const InArg> in, std::span<const OutArg> out,
                       const OpLimits& limits, Tenant tenant, const WorkGate& gate,
                       std::uint32_t& written) {
  constexpr auto kIo = sizeof(unifn_accel_model_io);
  if (in.empty() || in[0].bytes.size() != kIo || out.empty() || out[0].bytes.size() != kIo)
    return bad(
        fmt::format("model-run takes [unifn_accel_model_io ({} bytes)] first, to read and "
                    "to write",
                    kIo));
  for (const auto* a : {&in[0].type, &out[0].type})
    if (*a != UNIFN_ACCEL_ARG_RAW && *a != UNIFN_ACCEL_ARG_STRUCT)
      return bad("model-run's unifn_accel_model_io arguments must be declared raw or struct");
  const auto io = read_io(in[0]);
  if (io._reserved != 0) return bad("unifn_accel_model_io's reserved field is not 0");
  auto it = models_.find(io.model_id);
  if (it == models_.end() || it->second.record.session != session)
    return Result::fail(Status::Error,
                        fmt::format("no model {} in session {}", io.model_id, session));
  Entry& e = it->second;
  if (auto r = attach(mem, io.model_id, e); !r.ok()) return r;
  const auto& g = *e.graph;
  if (io.nr_inputs != g.inputs.size() || in.size() != 1 + g.inputs.size() ||
      out.size() != 1 + g.outputs.size())
    return bad(
        fmt::format("model {} takes {} inputs and gives {} outputs; the request names {} "
                    "inputs and carries {} read and {} write buffers after the "
                    "unifn_accel_model_io",
                    io.model_id, g.inputs.size(), g.outputs.size(), io.nr_inputs, in.size() - 1,
                    out.size() - 1));
  std::vector<Tensor> inputs(g.inputs.size());
  for (std::size_t i = 0; i < g.inputs.size(); ++i) {
    const auto& d = io.inputs[i];
    const auto& v = g.values[static_cast<std::size_t>(g.inputs[i])];
    const auto& a = in[1 + i];
    if (d.type != arg_type(v.type))
      return bad(fmt::format("input {} ('{}') is declared {}, the model takes {}", i, v.name,
                             arg_type_name(d.type), arg_type_name(arg_type(v.type))));
    if (a.type != UNIFN_ACCEL_ARG_RAW && a.type != d.type)
      return bad(
          fmt::format("input {}'s buffer is declared of another type than its description", i));
    if (d.rank > UNIFN_ACCEL_MODEL_MAX_RANK)
      return bad(
          fmt::format("input {} has rank {}, more than {}", i, d.rank, UNIFN_ACCEL_MODEL_MAX_RANK));
    Tensor& t = inputs[i];
    t.type = v.type;
    t.dims.assign(d.dims, d.dims + d.rank);
    const std::int64_t n = onnx_model::element_count(t.dims);
    if (n < 0)
      return bad(fmt::format("input {} has shape {}: a negative size or more than {} elements", i,
                             onnx_model::shape_string(t.dims), onnx_model::kMaxTensorElements));
    const std::size_t elem = v.type == DType::Float ? sizeof(float) : sizeof(std::int64_t);
    if (a.bytes.size() != static_cast<std::size_t>(n) * elem)
      return bad(fmt::format("input {} has shape {} ({} bytes) but its buffer is {} bytes", i,
                             onnx_model::shape_string(t.dims), static_cast<std::size_t>(n) * elem,
                             a.bytes.size()));
    if (v.type == DType::Float) {
      t.f.resize(static_cast<std::size_t>(n));
      std::memcpy(t.f.data(), a.bytes.data(), a.bytes.size());
    } else {
      t.i.resize(static_cast<std::size_t>(n));
      std::memcpy(t.i.data(), a.bytes.data(), a.bytes.size());
    }
  }
  const Work work{WorkKind::MultiplyAdds, e.madds};
  if (work.units > limits.max_sgemm_madds)
    return Result::fail(Status::Error,
                        fmt::format("model {} needs about {} multiply-adds a run, more than the {} "
                                    "one request may ask for",
                                    io.model_id, work.units, limits.max_sgemm_madds));
  if (gate)
    if (auto r = gate(work); !r.ok()) return r;
  std::vector<Tensor> outputs;
  if (auto r = backend_->run_model({&g, inputs, &outputs, tenant}); !r.ok()) return r;
  if (outputs.size() != g.outputs.size())
    return Result::fail(Status::Error, fmt::format("the backend gave {} outputs, the model has {}",
                                                   outputs.size(), g.outputs.size()));
  unifn_accel_model_io answer{};
  answer.model_id = io.model_id;
  answer.nr_inputs = io.nr_inputs;
  answer.nr_outputs = static_cast<std::uint32_t>(outputs.size());
  for (std::size_t j = 0; j < outputs.size(); ++j) {
    const Tensor& t = outputs[j];
    const std::size_t bytes = tensor_bytes(t);
    if (t.dims.size() > UNIFN_ACCEL_MODEL_MAX_RANK)
      return Result::fail(Status::Error, fmt::format("output {} has rank {}, more than {}", j,
                                                     t.dims.size(), UNIFN_ACCEL_MODEL_MAX_RANK));
    if (bytes > out[1 + j].bytes.size())
      return Result::fail(
          Status::Error,
          fmt::format("output {} has shape {} ({} bytes); its buffer holds {}", j,
                      onnx_model::shape_string(t.dims), bytes, out[1 + j].bytes.size()));
    auto& d = answer.outputs[j];
    d.type = arg_type(t.type);
    d.rank = static_cast<std::uint32_t>(t.dims.size());
    std::copy(t.dims.begin(), t.dims.end(), d.dims);
  }
  // Every check passed: now the guest's buffers are written.
  std::memcpy(out[0].bytes.data(), &answer, kIo);
  written = kIo;
  for (std::size_t j = 0; j < outputs.size(); ++j) {
    const Tensor& t = outputs[j];
    const auto* src = t.type == DType::Float ? static_cast<const void*>(t.f.data())
                                             : static_cast<const void*>(t.i.data());
    const std::size_t bytes = tensor_bytes(t);
    if (bytes) std::memcpy(out[1 + j].bytes.data(), src, bytes);
    written += static_cast<std::uint32_t>(bytes);
  }
  return Result::success();
}

void ModelTable::drop_session(std::uint32_t session) {
  std::erase_if(models_, [session](const auto& kv) { return kv.second.record.session == session; });
}

void ModelTable::clear() {
  models_.clear();
  next_model_ = 1;
}

ModelsState ModelTable::state() const {
  ModelsState s;
  s.next_model = next_model_;
  for (const auto& [id, e] : models_) s.models.emplace(id, e.record);
  return s;
}

void ModelTable::restore(const ModelsState& s) {
  models_.clear();
  next_model_ = s.next_model == 0 ? 1 : s.next_model;
  for (const auto& [id, rec] : s.models) {
    Entry e{rec, backend_->runs_models() ? backend_->find_model(rec.digest) : nullptr, 0};
    if (e.graph) e.madds = model_multiply_adds(*e.graph);
    models_.emplace(id, std::move(e));
  }
}

}  // namespace unifn::accel
