// virtio-accel request handling: every chain checked against accel_abi.h before a backend touches
// guest memory.
#include "accel/device.h"

#include <array>
#include <atomic>
#include <cstring>
#include <fmt/format.h>
#include <utility>

#include "vmm/devices/virtio/virtio_mmio.h"
#include "accel/ops.h"

namespace unifn::accel {

using vmm::GuestAddr;
using vmm::GuestMemory;
using vmm::virtio::Chain;
using vmm::virtio::Descriptor;

namespace {

std::string_view command_name(std::uint32_t c) {
  switch (c) {
    case UNIFN_ACCEL_CMD_NOOP:
      return "noop";
    case UNIFN_ACCEL_CMD_CREATE_SESSION:
      return "create-session";
    case UNIFN_ACCEL_CMD_DESTROY_SESSION:
      return "destroy-session";
    case UNIFN_ACCEL_CMD_DO_OP:
      return "do-op";
    case UNIFN_ACCEL_CMD_MODEL_REGISTER:
      return "model-register";
    case UNIFN_ACCEL_CMD_MODEL_UNREGISTER:
      return "model-unregister";
  }
  return "unknown command";
}

Result badmsg(std::string why) { return Result::fail(Status::BadMessage, std::move(why)); }

Tenant next_tenant() {
  static std::atomic<Tenant> next{1};
  return next++;
}

}  // namespace

AccelDevice::AccelDevice(std::shared_ptr<Backend> backend, DeviceOptions opts)
    : MmioTransport({UNIFN_VIRTIO_ID_ACCEL, 0x666e6975, 0, 1, UNIFN_ACCEL_QUEUE_SIZE}),
      backend_(backend ? std::move(backend)
                       : throw std::invalid_argument("a virtio-accel device needs a backend")),
      opts_(std::move(opts)),
      models_(backend_) {
  if (!opts_.rates) opts_.rates = std::make_shared<WorkRates>(backend_);
  gate_ = [this](const Work& w) { return admit(w); };
  config_.abi_version = UNIFN_ACCEL_ABI_VERSION;
  config_.ops = served_ops_mask();
  config_.max_sessions = opts_.max_sessions;
  config_.features = backend_->runs_models() ? UNIFN_ACCEL_FEATURE_MODELS : 0;
  const auto name = backend_->name();
  std::memcpy(config_.backend, name.data(), std::min(name.size(), sizeof config_.backend - 1));
}

void AccelDevice::read_config(std::uint64_t offset, std::span<std::uint8_t> out) const {
  // Safe: the config struct viewed as the bytes the guest reads; offset and size checked by the
  // transport.
  std::memcpy(out.data(), reinterpret_cast<const std::uint8_t*>(&config_) + offset, out.size());
}

void AccelDevice::reset_device() {
  sessions_.clear();
  next_session_ = 1;
  models_.clear();
}

void AccelState::write(vmm::ByteWriter& w) const {
  w.pod(kVersion);
  w.pod(next_session);
  w.pod(static_cast<std::uint32_t>(sessions.size()));
  for (const auto& [id, flags] : sessions) {
    w.pod(id);
    w.pod(flags);
  }
  models.write(w);
}

AccelState AccelState::read(vmm::ByteReader& r) {
  vmm::read_version(r, kVersion, "virtio-accel state");
  AccelState s;
  s.next_session = r.pod<std::uint32_t>();
  const auto count = r.pod<std::uint32_t>();
  for (std::uint32_t i = 0; i < count; ++i) {
    const auto id = r.pod<std::uint32_t>();
    const auto flags = r.pod<std::uint32_t>();
    if (id == 0 || !s.sessions.emplace(id, flags).second)
      throw std::runtime_error(
          fmt::format("virtio-accel state: session id {} is invalid or repeated", id));
  }
  s.models = ModelsState::read(r);
  for (const auto& [id, m] : s.models.models)
    if (!s.sessions.contains(m.session))
      throw std::runtime_error(fmt::format(
          "virtio-accel state: model {} belongs to session {}, which is not open", id, m.session));
  return s;
}

std::vector<std::uint8_t> AccelDevice::save_device() const {
  return vmm::encode(AccelState{next_session_, sessions_, models_.state()});
}

std::optional<std::string> AccelDevice::check_device(std::span<const std::uint8_t> state) const {
  try {
    const auto s = vmm::decode<AccelState>(state, "virtio-accel state");
    if (s.sessions.size() > opts_.max_sessions)
      return fmt::format("virtio-accel state holds {} sessions, more than the {} allowed",
                         s.sessions.size(), opts_.max_sessions);
    if (!s.models.models.empty() && !backend_->runs_models())
      return fmt::format(
          "virtio-accel state holds {} registered models, and the {} backend does "
          "not run models",
          s.models.models.size(), backend_->name());
    return std::nullopt;
  } catch (const std::runtime_error& e) {
    return e.what();
  }
}

void AccelDevice::restore_device(std::span<const std::uint8_t> state) {
  auto s = vmm::decode<AccelState>(state, "virtio-accel state");  // checked by check_device
  sessions_ = std::move(s.sessions);
  next_session_ = s.next_session == 0 ? 1 : s.next_session;
  models_.restore(s.models);
}

vmm::IoResult AccelDevice::access(vmm::Machine& machine, vmm::MmioAccess& a) {
  machine_ = &machine;
  auto r = MmioTransport::access(machine, a);  // catches what the device throws
  machine_ = nullptr;
  return r;
}

std::optional<std::string> AccelDevice::interrupted() const {
  if (machine_ && machine_->cancelled()) return "the call was cancelled";
  if (deadline_ != Clock::time_point::max() && Clock::now() >= deadline_)
    return "the call's deadline passed";
  return std::nullopt;
}

Result AccelDevice::admit(const Work& w) {
  if (deadline_ == Clock::time_point::max() || w.units < kUnbudgetedWork) return Result::success();
  const double rate = opts_.rates->per_second(
      w.kind);  // measured here the first time: after it, now() is what counts
  if (auto why = over_budget(w, rate, Clock::now(), deadline_))
    return Result::fail(Status::Error, std::move(*why));
  return Result::success();
}

void AccelDevice::refuse(const std::string& why, std::uint64_t count) {
  refused_ += count;
  last_error_ = why;
  if (opts_.on_error) opts_.on_error(why);
}

Result AccelDevice::create_session(std::uint32_t flags, std::uint32_t& id) {
  if (sessions_.size() >= opts_.max_sessions)
    return Result::fail(Status::Error, fmt::format("all {} sessions are open", opts_.max_sessions));
  id = next_session_;
  while (id == 0 || sessions_.contains(id)) ++id;  // ids are never 0 and never shared
  next_session_ = id + 1;
  sessions_.emplace(id, flags);
  return Result::success();
}

Result AccelDevice::serve(GuestMemory& mem, const Chain& chain, std::uint32_t& written) {
  written = 0;
  if (!chain.ok()) return badmsg(chain.error);
  const auto& d = chain.descs;
  const GuestMemory& ro = mem;  // reads through a const view: they do not count as host writes
  if (d.size() < 2)
    return badmsg(fmt::format(
        "the chain has {} descriptor(s); a header and a status byte at least are needed",
        d.size()));
  if (d[0].writable || d[0].len != sizeof(unifn_accel_req))
    return badmsg(fmt::format(
        "the header descriptor is {} bytes{}; a device-readable {}-byte header is expected",
        d[0].len, d[0].writable ? ", device-writable" : "", sizeof(unifn_accel_req)));
  const auto req = ro.read_obj<unifn_accel_req>(GuestAddr(d[0].addr));
  // Who the request is, for messages; built only when one is needed.
  const auto who_of = [&req] {
    return fmt::format(
        "request {} ({}, session {})", req.request_id,
        req.command == UNIFN_ACCEL_CMD_DO_OP ? op_name(req.op) : command_name(req.command),
        req.session_id);
  };
  if (d.back().len != 1)
    return badmsg(
        fmt::format("{}: the status descriptor is {} bytes, 1 expected", who_of(), d.back().len));
  if (req._reserved != 0)
    return badmsg(
        fmt::format("{}: the header's reserved field is {}, 0 expected", who_of(), req._reserved));
  const std::uint64_t nargs = std::uint64_t{req.nr_read} + req.nr_write;
  if (nargs > UNIFN_ACCEL_MAX_ARGS)
    return badmsg(fmt::format("{}: {} read and {} write arguments, more than the {} allowed",
                              who_of(), req.nr_read, req.nr_write, UNIFN_ACCEL_MAX_ARGS));
  const std::size_t want = 2 + (nargs ? 1 : 0) + nargs;
  if (d.size() != want)
    return badmsg(fmt::format(
        "{}: the chain has {} descriptors, its header's {} read and {} write arguments need {}",
        who_of(), d.size(), req.nr_read, req.nr_write, want));

  std::array<unifn_accel_arg, UNIFN_ACCEL_MAX_ARGS> hdrs{};
  std::array<InArg, UNIFN_ACCEL_MAX_ARGS> in{};
  std::array<OutArg, UNIFN_ACCEL_MAX_ARGS> out{};
  if (nargs) {
    if (d[1].writable || d[1].len != nargs * sizeof(unifn_accel_arg))
      return badmsg(fmt::format(
          "{}: the argument headers are {} bytes{}; {} device-readable bytes expected", who_of(),
          d[1].len, d[1].writable ? ", device-writable" : "", nargs * sizeof(unifn_accel_arg)));
    ro.read(GuestAddr(d[1].addr),
            std::span(reinterpret_cast<std::uint8_t*>(hdrs.data()),
                      nargs * sizeof(unifn_accel_arg)));  // Safe: POD array as bytes.
    for (std::size_t i = 0; i < nargs; ++i) {
      const Descriptor& a = d[2 + i];
      const bool is_write = i >= req.nr_read;
      const std::size_t j = is_write ? i - req.nr_read : i;
      if (a.writable != is_write)
        return badmsg(fmt::format("{}: {} argument {} is in a device-{} descriptor", who_of(),
                                  is_write ? "write" : "read", j,
                                  a.writable ? "writable" : "readable"));
      if (a.len != hdrs[i].len)
        return badmsg(
            fmt::format("{}: {} argument {} is {} bytes in its descriptor but {} in its header",
                        who_of(), is_write ? "write" : "read", j, a.len, hdrs[i].len));
      if (a.len > UNIFN_ACCEL_MAX_ARG_BYTES)
        return badmsg(fmt::format("{}: {} argument {} is {} bytes, more than the {} allowed",
                                  who_of(), is_write ? "write" : "read", j, a.len,
                                  UNIFN_ACCEL_MAX_ARG_BYTES));
      if (is_write)
        out[j] = {hdrs[i].type, mem.span(GuestAddr(a.addr), a.len, "accel write argument")};
      else
        in[j] = {hdrs[i].type, ro.span(GuestAddr(a.addr), a.len, "accel read argument"), a.addr};
    }
  }
  const std::span<const InArg> ins(in.data(), req.nr_read);
  const std::span<const OutArg> outs(out.data(), req.nr_write);

  auto with_who = [&](Result r) {
    if (!r.ok()) r.message = fmt::format("{}: {}", who_of(), r.message);
    return r;
  };
  switch (req.command) {
    case UNIFN_ACCEL_CMD_NOOP:
      if (nargs) return badmsg(fmt::format("{}: takes no arguments, {} given", who_of(), nargs));
      return Result::success();
    case UNIFN_ACCEL_CMD_CREATE_SESSION: {
      if (req.nr_read > 1 || req.nr_write != 1 || outs[0].bytes.size() != 4 ||
          (req.nr_read == 1 && ins[0].bytes.size() != 4))
        return badmsg(fmt::format(
            "{}: takes [u32 flags] to read and one u32 to write the session id into", who_of()));
      std::uint32_t flags = 0, id = 0;
      if (req.nr_read == 1) std::memcpy(&flags, ins[0].bytes.data(), 4);
      auto r = create_session(flags, id);
      if (!r.ok()) return with_who(std::move(r));
      std::memcpy(outs[0].bytes.data(), &id, 4);
      written = 4;
      return r;
    }
    case UNIFN_ACCEL_CMD_DESTROY_SESSION:
      if (nargs) return badmsg(fmt::format("{}: takes no arguments, {} given", who_of(), nargs));
      if (!sessions_.erase(req.session_id))
        return Result::fail(Status::InvalidSession, fmt::format("{}: no such session", who_of()));
      models_.drop_session(req.session_id);
      return Result::success();
    case UNIFN_ACCEL_CMD_MODEL_REGISTER:
    case UNIFN_ACCEL_CMD_MODEL_UNREGISTER: {
      if (!sessions_.contains(req.session_id))
        return Result::fail(Status::InvalidSession, fmt::format("{}: no such session", who_of()));
      auto r = req.command == UNIFN_ACCEL_CMD_MODEL_REGISTER
                   ? models_.register_model(req.session_id, ins, outs, written)
                   : models_.unregister_model(req.session_id, ins);
      if (!r.ok()) written = 0;
      return with_who(std::move(r));
    }
    case UNIFN_ACCEL_CMD_DO_OP: {
      if (!sessions_.contains(req.session_id))
        return Result::fail(Status::InvalidSession, fmt::format("{}: no such session", who_of()));
      if (req.op == UNIFN_ACCEL_OP_MODEL_RUN) {
        auto r = with_who(
            models_.run(ro, req.session_id, ins, outs, opts_.limits, opts_.tenant, gate_, written));
        if (!r.ok()) written = 0;
        if (r.ok() && opts_.on_op) opts_.on_op(backend_->name(), op_name(req.op));
        return r;
      }
      auto r = with_who(run_op(*backend_, req.op, ins, outs, opts_.limits, opts_.tenant, gate_));
      if (r.ok()) {
        for (const auto& o : outs) written += static_cast<std::uint32_t>(o.bytes.size());
        if (opts_.on_op) opts_.on_op(backend_->name(), metric_name(req.op, ins));
      }
      return r;
    }
    default:
      return Result::fail(
          Status::NotSupported,
          fmt::format("{}: command {} is not one this device knows", who_of(), req.command));
  }
}

void AccelDevice::on_notify(GuestMemory& mem, vmm::virtio::SplitQueue& q, std::uint16_t index) {
  (void)index;
  std::optional<std::string> stopped;  // why the rest of the queue is answered without running
  std::uint64_t unserved = 0;
  while (auto chain = q.pop(mem)) {
    const auto slot = chain->status_slot(mem);
    if (!slot) {
      // No place to answer: hand the chain back empty, as virtio does for buffers it cannot use.
      refuse(chain->error.empty() ? "the request's last descriptor cannot hold a status byte "
                                    "(device-readable, empty or outside RAM)"
                                  : chain->error);
      q.push_used(mem, chain->head, 0);
      continue;
    }
    // Between chains: a call that is over gets a prompt exit, and its guest a clean error each.
    if (!stopped) stopped = interrupted();
    if (stopped) {
      ++unserved;
      mem.write_obj(GuestAddr(slot->addr), static_cast<std::uint8_t>(Status::Error));
      q.push_used(mem, chain->head, 1);
      continue;
    }
    std::uint32_t written = 0;
    Result r;
    try {
      r = serve(mem, *chain, written);
    } catch (const std::exception& e) {
      r = Result::fail(Status::Error,
                       fmt::format("the {} backend failed: {}", backend_->name(), e.what()));
      written = 0;
    }
    if (r.ok())
      ++served_;
    else
      refuse(r.message);
    mem.write_obj(GuestAddr(slot->addr), static_cast<std::uint8_t>(r.status));
    q.push_used(mem, chain->head, written + 1);
  }
  if (unserved)
    refuse(
        fmt::format("{}: {} more request(s) of this notification answered with an error, not run",
                    *stopped, unserved),
        unserved);
  raise_interrupt(vmm::virtio::kInterruptUsedBuffer);
}

vmm::MmioDeviceFactory device_factory(std::shared_ptr<Backend> backend, DeviceOptions opts) {
  if (!backend) throw std::invalid_argument("a virtio-accel device factory needs a backend");
  if (opts.tenant == 0) opts.tenant = next_tenant();
  if (!opts.rates) opts.rates = std::make_shared<WorkRates>(backend);
  return
      [backend = std::move(backend), opts = std::move(opts)]() -> std::unique_ptr<vmm::MmioDevice> {
        return std::make_unique<AccelDevice>(backend, opts);
      };
}

}  // namespace unifn::accel
