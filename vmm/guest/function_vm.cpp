// Boot, hypercalls, system calls and exceptions of a unifn function VM.
#include "vmm/guest/function_vm.h"

#include <sys/random.h>
#include <x86intrin.h>

#include <algorithm>
#include <array>
#include <system_error>
#include <unistd.h>
#include <cstring>
#include <fmt/format.h>
#include <unifn/abi.h>

#include "vmm/x86/layout.h"

namespace unifn::vmm {

namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t k2M = 2ull << 20;
constexpr std::uint64_t page_up(std::uint64_t v) { return (v + kPage - 1) & ~(kPage - 1); }
constexpr std::uint64_t kStackBytes = 1ull << 20;
constexpr std::uint16_t kHypercallPorts = 0x100;  // UNIFN_HC_BASE .. +0xFF belong to hypercalls
constexpr std::uint32_t kPfW = 2, kPfX = 1;       // ELF segment flags

const char* vector_name(unsigned v) {
  static const char* names[] = {"#DE divide error",
                                "#DB debug",
                                "NMI",
                                "#BP breakpoint",
                                "#OF overflow",
                                "#BR bound range",
                                "#UD invalid opcode",
                                "#NM device not available",
                                "#DF double fault",
                                "coprocessor overrun",
                                "#TS invalid TSS",
                                "#NP segment not present",
                                "#SS stack fault",
                                "#GP general protection",
                                "#PF page fault",
                                "reserved",
                                "#MF x87 floating point",
                                "#AC alignment check",
                                "#MC machine check",
                                "#XM SIMD floating point",
                                "#VE virtualization",
                                "#CP control protection"};
  return v < std::size(names) ? names[v] : "reserved exception";
}

}  // namespace

BootError::BootError(Stop s, const std::string& image)
    : std::runtime_error(fmt::format("{}: the function did not initialise: {}", image, s.message)),
      stop(std::move(s)) {}

FunctionVm::Layout FunctionVm::plan(const FunctionImage& image, const FunctionVmConfig& cfg) {
  Layout l;
  l.ram = (cfg.memory_bytes + k2M - 1) / k2M * k2M;
  if (l.ram > UNIFN_RAM_MAX_BYTES)
    throw ImageError(
        fmt::format("{}: {} MiB of guest RAM is more than the {} MiB a unifn VM can have",
                    image.path, l.ram >> 20, UNIFN_RAM_MAX_BYTES >> 20));
  l.io_size =
      std::min(page_up(2 * std::max<std::uint64_t>(cfg.max_body_bytes, kPage)), page_up(l.ram / 4));
  l.io_buf = l.ram - l.io_size;
  l.stack_top = l.io_buf;
  l.heap_end = l.stack_top - kStackBytes;
  for (const auto& seg : image.elf.segments)
    if (seg.gpa + seg.mem_size > l.ram)
      throw ImageError(
          fmt::format("{}: segment at {:#x} of {:#x} bytes does not fit in {} MiB of guest RAM",
                      image.path, seg.gpa, seg.mem_size, l.ram >> 20));
  l.heap_start = page_up(image.elf.end);
  if (image.elf.end > l.heap_end || l.heap_end - l.heap_start < (1u << 20))
    throw ImageError(fmt::format(
        "{}: the image ends at {:#x}, which leaves less than 1 MiB of heap in {} MiB of RAM",
        image.path, image.elf.end, l.ram >> 20));
  return l;
}

namespace {
// What the platform needs to create the machine: RAM, its snapshot file, the image's rights.
MachineSpec machine_spec(const GuestLayout& l, const FunctionImage& image, const Snapshot* snap) {
  MachineSpec spec;
  spec.ram_bytes = l.ram;
  spec.ram_file = snap ? &snap->ram : nullptr;
  spec.track_writes = snap != nullptr;
  for (const auto& seg : image.elf.segments)
    spec.regions.push_back(
        {seg.gpa, seg.mem_size, (seg.flags & kPfW) != 0, (seg.flags & kPfX) != 0});
  return spec;
}
}  // namespace

FunctionVm::FunctionVm(std::shared_ptr<const FunctionImage> image, const FunctionVmConfig& cfg,
                       Console::Sink console)
    : FunctionVm(std::move(image), cfg, std::move(console), nullptr) {}

FunctionVm::FunctionVm(std::shared_ptr<const FunctionImage> image, const FunctionVmConfig& cfg,
                       Console::Sink console, std::shared_ptr<const Snapshot> snap)
    : image_(std::move(image)),
      cfg_(cfg),
      layout_(snap ? snap->layout : plan(*image_, cfg_)),
      console_(std::move(console)),
      machine_(cfg_.platform_or_default().create(machine_spec(layout_, *image_, snap.get()))),
      syscalls_(layout_.heap_start, layout_.heap_end, console_),
      snap_(std::move(snap)) {
  syscalls_.guest_cpu_ns = [this] {
    auto ran = ran_;
    if (running_since_ != std::chrono::steady_clock::time_point{})
      ran += std::chrono::steady_clock::now() - running_since_;
    return static_cast<std::uint64_t>(ran.count());
  };
  syscalls_.on_unknown = [this](std::string_view what) { console_.say(what); };
  // Long work inside one exit (console lines to a slow sink, zeroing gigabytes) stops once the call
  // is over.
  syscalls_.out_of_time = [this] {
    return machine_->cancelled() || std::chrono::steady_clock::now() >= deadline_;
  };
  console_.set_stop(syscalls_.out_of_time);
}

FunctionVm::~FunctionVm() = default;

std::unique_ptr<FunctionVm> FunctionVm::boot(std::shared_ptr<const FunctionImage> image,
                                             const FunctionVmConfig& cfg, Console::Sink console) {
  std::unique_ptr<FunctionVm> vm(new FunctionVm(std::move(image), cfg, std::move(console)));
  auto& mem = vm->machine_->memory();
  load_segments(vm->image_->elf, vm->image_->bytes, mem, vm->image_->path);
  vm->write_boot_info();
  vm->wire_ports();
  vm->machine_->start_user(vm->image_->elf.entry, vm->layout_.stack_top, layout::kBootInfo);
  Stop s = vm->run_guest(std::chrono::steady_clock::now() + cfg.init_timeout);
  vm->console_.end_request();
  if (s.kind != StopKind::Parked) throw BootError(std::move(s), vm->image_->path);
  return vm;
}

std::unique_ptr<FunctionVm> FunctionVm::restore(std::shared_ptr<const Snapshot> snap,
                                                std::shared_ptr<const FunctionImage> image,
                                                const FunctionVmConfig& cfg,
                                                Console::Sink console) {
  if (cfg.devices.size() != snap->devices.size())
    throw std::invalid_argument(fmt::format("{}: the snapshot has {} devices, the config {}",
                                            image->path, snap->devices.size(), cfg.devices.size()));
  std::unique_ptr<FunctionVm> vm(new FunctionVm(std::move(image), cfg, std::move(console), snap));
  vm->wire_ports();
  unifn_boot_info bi =
      vm->machine_->memory().read_obj<unifn_boot_info>(GuestAddr(layout::kBootInfo));
  bi.virtio_count = 0;
  vm->attach_devices(bi);  // same factories, same order: same windows as at snapshot time
  // Every piece checked before reset() restores any: then no reset of this VM fails halfway.
  auto refuse = [&](const std::string& why) {
    return std::invalid_argument(
        fmt::format("{}: the snapshot does not restore: {}", vm->image_->path, why));
  };
  if (auto bad = LinuxSyscalls::check(snap->heap, vm->layout_.heap_start, vm->layout_.heap_end))
    throw refuse("heap: " + *bad);
  if (auto bad = cfg.platform_or_default().cpu_state_problem(snap->cpu)) throw refuse(*bad);
  for (std::size_t i = 0; i < vm->devices_.size(); ++i)
    if (auto bad = vm->devices_[i]->check(snap->devices[i]))
      throw refuse(fmt::format("device {}: {}", i, *bad));
  vm->machine_->memory().track_host_writes(true);
  vm->reset();
  vm->reseed();
  vm->tsc_khz_ = std::max<std::uint64_t>(1, vm->machine_->tsc_khz());
  return vm;
}

std::shared_ptr<Snapshot> FunctionVm::snapshot(Fd ram_file) {
  if (!parked_at_) throw std::logic_error("only a VM waiting for a request can be snapshotted");
  auto snap = std::make_shared<Snapshot>();
  const auto& mem = machine_->memory();
  // The CPU state first: completing a pending exit (KVM on VT-x) may still write guest memory.
  snap->cpu = machine_->capture();
  static const std::uint8_t zero[kPage] = {};
  for (auto [from, to] : mem.populated()) {
    for (std::uint64_t off = from & ~(kPage - 1); off < to; off += kPage) {
      auto page = mem.span(GuestAddr(off), kPage, "snapshot");
      if (std::memcmp(page.data(), zero, kPage) == 0) continue;  // holes read back as zero
      // Safe: writes our own buffer to the caller's file at the page's offset.
      if (::pwrite(ram_file.get(), page.data(), kPage, static_cast<off_t>(off)) !=
          static_cast<ssize_t>(kPage))
        throw std::system_error(errno, std::generic_category(), "writing the snapshot RAM file");
    }
  }
  if (::ftruncate(ram_file.get(), static_cast<off_t>(layout_.ram)) != 0)
    throw std::system_error(errno, std::generic_category(), "sizing the snapshot RAM file");
  snap->ram = std::move(ram_file);
  snap->layout = layout_;
  snap->heap = syscalls_.save();
  snap->parked_at = parked_at_->value;
  for (const auto& d : devices_) snap->devices.push_back(d->save());
  return snap;
}

void FunctionVm::reset() {
  if (!snap_) throw std::logic_error("reset() needs a VM restored from a snapshot");
  auto& mem = machine_->memory();
  auto pages = machine_->take_dirty_pages();
  auto host = mem.take_host_dirty();
  pages.insert(pages.end(), host.begin(), host.end());
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  last_reset_pages_ = pages.size();
  for (std::size_t i = 0; i < pages.size();) {  // one madvise per run of consecutive pages
    std::size_t j = i + 1;
    while (j < pages.size() && pages[j] == pages[j - 1] + 1) ++j;
    mem.discard(GuestAddr(pages[i] * kPage), (j - i) * kPage);
    i = j;
  }
  machine_->apply(snap_->cpu);
  for (std::size_t i = 0; i < devices_.size(); ++i) devices_[i]->restore(snap_->devices[i]);
  syscalls_.restore(snap_->heap);
  parked_at_ = GuestAddr(snap_->parked_at);
  current_ = nullptr;
}

void FunctionVm::reseed() {
  std::uint8_t seed[16];
  if (getrandom(seed, sizeof seed, 0) != sizeof seed) throw std::runtime_error("getrandom failed");
  machine_->memory().write(GuestAddr(layout::kRandom), seed);
}

void FunctionVm::write_boot_info() {
  auto& mem = machine_->memory();
  unifn_boot_info bi{};
  bi.magic = UNIFN_BOOT_MAGIC;
  bi.abi_version = UNIFN_ABI_VERSION;
  bi.ram_bytes = layout_.ram;
  bi.tsc_khz = tsc_khz_ = std::max<std::uint64_t>(1, machine_->tsc_khz());

  std::string cmdline = cfg_.cmdline.substr(0, layout::kCmdlineMax - 1);
  mem.fill(GuestAddr(layout::kCmdline), 0, layout::kCmdlineMax);
  mem.write(GuestAddr(layout::kCmdline),
            std::span(reinterpret_cast<const std::uint8_t*>(cmdline.data()),
                      cmdline.size()));  // Safe: chars as bytes.
  bi.cmdline = layout::kCmdline;

  std::string env;
  for (const auto& [k, v] : cfg_.env) env += k + "=" + v + '\0';
  env += '\0';
  if (env.size() > layout::kEnvMax)
    throw ImageError(
        fmt::format("{}: the environment is {} bytes, more than the {} a function may have",
                    image_->path, env.size(), layout::kEnvMax));
  mem.write(GuestAddr(layout::kEnv), std::span(reinterpret_cast<const std::uint8_t*>(env.data()),
                                               env.size()));  // Safe: chars as bytes.
  bi.env = layout::kEnv;

  const auto& phdrs = image_->elf.phdrs;
  if (phdrs.size() > layout::kPhdrsMax)
    throw ImageError(fmt::format("{}: too many program headers", image_->path));
  mem.write(GuestAddr(layout::kPhdrs), phdrs);
  bi.phdr = layout::kPhdrs;
  bi.phnum = image_->elf.phnum;
  bi.phent = image_->elf.phentsize;

  std::uint8_t seed[16];
  if (getrandom(seed, sizeof seed, 0) != sizeof seed) throw std::runtime_error("getrandom failed");
  mem.write(GuestAddr(layout::kRandom), seed);
  bi.random = layout::kRandom;

  bi.io_buf = layout_.io_buf;
  bi.io_buf_size = layout_.io_size;
  bi.heap_start = layout_.heap_start;
  bi.heap_end = layout_.heap_end;
  bi.stack_top = layout_.stack_top;
  attach_devices(bi);
  mem.write_obj(GuestAddr(layout::kBootInfo), bi);
}

void FunctionVm::attach_devices(unifn_boot_info& bi) {
  if (cfg_.devices.size() > UNIFN_MAX_VIRTIO)
    throw std::invalid_argument(fmt::format("{} devices asked for; a function VM has room for {}",
                                            cfg_.devices.size(), UNIFN_MAX_VIRTIO));
  std::uint64_t base = kMmioWindowBase;
  for (const auto& make : cfg_.devices) {
    auto dev = make();
    const std::uint64_t size = dev->window_size();
    if (size == 0 || size % kPage || base + size > kMmioWindowBase + kMmioWindowSize)
      throw std::invalid_argument("an MMIO device does not fit the MMIO window");
    dev->attach(*machine_, base);
    MmioDevice* raw = dev.get();
    machine_->on_mmio(base, size, [raw](Machine& m, MmioAccess& a) { return raw->access(m, a); });
    bi.virtio[bi.virtio_count++] = unifn_virtio_mmio{base, size, dev->device_id(), 0};
    devices_.push_back(std::move(dev));
    base += size;
  }
}

void FunctionVm::wire_ports() {
  // The whole hypercall block is claimed, so a number the ABI does not define is an error, not a
  // no-op.
  machine_->on_ports(UNIFN_HC_BASE, kHypercallPorts, [this](Machine&, PortAccess& a) {
    if (!a.write || a.data.size() != 4)
      return IoResult::halt(
          {StopKind::Fault, 0,
           fmt::format("hypercall port {:#x} used with a {}-byte {} (outl expected) at {}", a.port,
                       a.data.size(), a.write ? "write" : "read", machine_->where())});
    std::uint32_t gpa;
    std::memcpy(&gpa, a.data.data(), 4);
    try {
      return on_hypercall(a.port - UNIFN_HC_BASE, gpa);
    } catch (const GuestMemoryError& e) {
      return IoResult::halt({StopKind::Fault, 0,
                             fmt::format("hypercall {}: {} ({})", a.port - UNIFN_HC_BASE, e.what(),
                                         machine_->where())});
    }
  });
  machine_->on_syscall([this](Machine&, GuestRegs& regs) { return on_syscall(regs); });
  machine_->on_exception([this](Machine&, const GuestException& e) { return on_exception(e); });
}

IoResult FunctionVm::park(std::uint64_t next_gpa) {
  auto& mem = machine_->memory();
  auto next = mem.read_user<unifn_hc_next>(GuestAddr(next_gpa), "NEXT_REQUEST argument");
  mem.check_user(GuestAddr(next.buf), next.buf_cap, "NEXT_REQUEST's request buffer");
  parked_at_ = GuestAddr(next_gpa);
  return IoResult::halt({StopKind::Parked, 0, "waiting for a request"});
}

IoResult FunctionVm::on_hypercall(std::uint32_t nr, std::uint32_t gpa) {
  auto& mem = machine_->memory();
  switch (nr) {
    case UNIFN_HC_CONSOLE_WRITE: {
      auto b = mem.read_user<unifn_hc_buf>(GuestAddr(gpa), "CONSOLE_WRITE argument");
      console_.put(mem.user_span(GuestAddr(b.data), b.len,
                                 "console buffer"));  // bytes past ConsoleLimits::kPerCall dropped
      return IoResult::next();
    }
    case UNIFN_HC_LOG: {
      auto l = mem.read_user<unifn_hc_log>(GuestAddr(gpa), "LOG argument");
      console_.write(
          mem.user_span(GuestAddr(l.data), std::min<std::uint64_t>(l.len, 4096), "log buffer"));
      console_.write(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>("\n"),
                                                   1));  // Safe: literal as bytes.
      return IoResult::next();
    }
    case UNIFN_HC_NEXT_REQUEST:
      if (current_)
        return IoResult::halt(
            {StopKind::Fault, 0,
             "the guest asked for the next request without answering the current one"});
      return park(gpa);
    case UNIFN_HC_RESPOND: {
      auto r = mem.read_user<unifn_hc_respond>(GuestAddr(gpa), "RESPOND argument");
      if (!current_) return IoResult::halt({StopKind::Fault, 0, "RESPOND outside of a request"});
      if (r.status < 100 || r.status > 599)
        return IoResult::halt(
            {StopKind::Fault, 0,
             fmt::format("RESPOND with HTTP status {} (100-599 expected)", r.status)});
      if (r.content_type_len > 255)
        return IoResult::halt(
            {StopKind::Fault, 0,
             fmt::format("RESPOND with a {}-byte content type (255 at most)", r.content_type_len)});
      auto ct = mem.user_span(GuestAddr(r.content_type), r.content_type_len, "content type");
      // The content type becomes a response header (and a callback request's): a CR or LF would
      // inject headers or a second response. Any control byte but HTAB is refused (RFC 9110's
      // field-value), in the copy that is kept; the pool answers the caller 502 with this reason.
      std::string type(ct.begin(), ct.end());
      for (std::size_t i = 0; i < type.size(); ++i)
        if (auto c = static_cast<unsigned char>(type[i]); (c < 0x20 && c != '\t') || c == 0x7F)
          return IoResult::halt(
              {StopKind::Fault, 0,
               fmt::format(
                   "RESPOND with a content type holding control bytes (byte {:#04x} at offset {})",
                   c, i)});
      auto body = mem.user_span(GuestAddr(r.body), r.body_len,
                                "response body");  // inside user memory first
      // A response is held in the daemon's memory until it is sent: bounded like a request body.
      if (r.body_len > cfg_.max_body_bytes)
        return IoResult::halt(
            {StopKind::Fault, 0,
             fmt::format("RESPOND with a body of {} bytes, more than the {}-byte limit", r.body_len,
                         cfg_.max_body_bytes)});
      current_->status = r.status;
      current_->content_type = std::move(type);
      current_->body.assign(body.begin(), body.end());
      current_->handler_tsc = r.handler_tsc;
      current_ = nullptr;
      if (r.next) return park(r.next);
      return IoResult::next();
    }
    case UNIFN_HC_ABORT: {
      auto b = mem.read_user<unifn_hc_buf>(GuestAddr(gpa), "ABORT argument");
      auto reason =
          mem.user_span(GuestAddr(b.data), std::min<std::uint64_t>(b.len, 1024), "abort reason");
      console_.flush();
      return IoResult::halt(
          {StopKind::Aborted, 0,
           fmt::format("the function aborted: {}", std::string(reason.begin(), reason.end()))});
    }
    case UNIFN_HC_EXIT: {
      auto e = mem.read_user<unifn_hc_exit>(GuestAddr(gpa), "EXIT argument");
      console_.flush();
      return IoResult::halt(
          {StopKind::Exited, e.status, fmt::format("the guest exited with status {}", e.status)});
    }
    default:
      return IoResult::halt(
          {StopKind::Fault, 0, fmt::format("unknown hypercall {} at {}", nr, machine_->where())});
  }
}

Stop FunctionVm::run_guest(std::chrono::steady_clock::time_point deadline) {
  for (const auto& d : devices_)
    d->begin_run(deadline);  // the accelerator budgets its ops against it
  running_since_ = std::chrono::steady_clock::now();
  deadline_ = deadline;
  Stop s = machine_->run(deadline);
  ran_ += std::chrono::steady_clock::now() - running_since_;
  running_since_ = {};
  return s;
}

IoResult FunctionVm::on_syscall(GuestRegs& regs) {
  auto out = syscalls_.handle(*machine_, regs);
  if (out.stop) return IoResult::halt(std::move(*out.stop));
  regs.rax = static_cast<std::uint64_t>(out.ret);
  return IoResult::next();
}

IoResult FunctionVm::on_exception(const GuestException& e) {
  std::string msg = fmt::format(
      "guest exception {} (vector {}) {}", vector_name(e.vector), e.vector,
      e.rip ? fmt::format("at rip {:#x}", *e.rip) : "with an unreadable exception frame");
  if (e.error_code) msg += fmt::format(", error code {:#x}", *e.error_code);
  if (e.address) msg += fmt::format(", address {:#x}", *e.address);
  console_.flush();
  return IoResult::halt({StopKind::Fault, 0, std::move(msg)});
}

Outcome FunctionVm::invoke(std::span<const std::uint8_t> body, std::string_view content_type,
                           std::chrono::steady_clock::time_point deadline) {
  Outcome out;
  if (!parked_at_) {
    out.stop = {StopKind::Fault, 0, "the function VM is not waiting for a request"};
    return out;
  }
  auto& mem = machine_->memory();
  const GuestAddr at = *parked_at_;
  unifn_hc_next next;
  try {  // checked when the guest parked; checked again, for a VM restored from a state file
    next = mem.read_user<unifn_hc_next>(at, "parked NEXT_REQUEST argument");
    mem.check_user(GuestAddr(next.buf), next.buf_cap, "NEXT_REQUEST's request buffer");
  } catch (const GuestMemoryError& e) {
    out.stop = {StopKind::Fault, 0, fmt::format("the VM cannot take a request: {}", e.what())};
    return out;
  }
  if (body.size() > next.buf_cap) {
    out.stop = {StopKind::Parked, 0, ""};
    out.too_large = true;
    out.status = 413;
    out.body =
        fmt::format("the request body of {} bytes is larger than the function's buffer of {} bytes",
                    body.size(), next.buf_cap);
    return out;
  }
  mem.write(GuestAddr(next.buf), body);
  next.len = body.size();
  next.request_id = ++requests_;
  out.deliver_tsc = next.deliver_tsc = guest_tsc_now();
  std::memset(next.content_type, 0, sizeof next.content_type);
  std::memcpy(next.content_type, content_type.data(),
              std::min(content_type.size(), sizeof next.content_type - 1));
  mem.write_obj(at, next);
  parked_at_.reset();
  current_ = &out;
  out.stop = run_guest(deadline);
  current_ = nullptr;
  console_.end_request();
  if (out.stop.kind == StopKind::Parked && out.status == 0)
    out.stop = {StopKind::Fault, 0, "the guest parked without answering"};
  return out;
}

}  // namespace unifn::vmm
