// libFuzzer target: the files the VMM reads. The input's first byte picks what the rest is (its
// low 3 bits; bit 4 adds a virtio-accel device where a device matters):
//   0  a unifn function image: FunctionImage::from_bytes; what loads is booted on the fuzz platform
//      (plan, segments, boot info) and invoked once by a polite guest;
//   1  a multiboot kernel: load_multiboot into 16 MiB;
//   2  a PVH kernel: parse_kernel_elf, load_pvh into 16 MiB;
//   3  a snapshot state payload: written as a state file with a valid header and checksums (the
//      RAM checksum patched into its last 8 bytes) beside the RAM file of a real snapshot of the
//      example image, then SnapshotStore::load;
//   4  a whole snapshot state file (header included), beside the same RAM file, then load;
//   5  virtio-accel device state: u16 n, n bytes of state for MmioDevice::check and restore (which
//      must agree, and a refused restore change nothing), the rest guest RAM for a queue
//      notification;
//   6  a KVM vCPU state: KvmCpuState::from_bytes (what a snapshot's CPU bytes become on KVM).
// Whatever loads must not crash or throw anything but the documented errors (ImageError for
// images and kernels, BootError when an image does not initialise, std::runtime_error for
// snapshot files and device and vCPU state): anything else is a finding ("escaped"). What loaded
// must then be usable: a loaded snapshot restores on the fake platform, is invoked, answers heap
// system calls and resets without throwing ("restore-threw", "loaded-state"); restored device
// state saves and restores again to the same bytes and serves a notification ("device"); a vCPU
// state converts back to the same bytes ("cpu-state").
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <memory>
#include <string>
#include <vector>

#include <unifn/abi.h>

#include "accel/device.h"
#include "vmm/devices/virtio/virtio_mmio.h"
#include "test/fuzz/fuzz_boot.h"
#include "test/fuzz/fuzz_common.h"
#include "test/fuzz/fuzz_machine.h"
#include "vmm/guest/function_vm.h"
#include "vmm/loader/multiboot.h"
#include "vmm/loader/pvh.h"
#include "vmm/platform/fake/fake_machine.h"
#include "vmm/platform/kvm/kvm_cpu_state.h"
#include "accel/reference/reference.h"
#include "vmm/snapshot/byte_io.h"
#include "vmm/snapshot/snapshot_store.h"

#ifndef UNIFN_FUZZ_IMAGE
#error \
    "UNIFN_FUZZ_IMAGE must name the example image whose snapshots are fuzzed (build/functions/echo.elf)"
#endif

using namespace unifn;
using namespace unifn::fuzz;
using vmm::GuestAddr;

namespace {

namespace fs = std::filesystem;
constexpr std::uint64_t kPage = 4096;
constexpr std::size_t kKernelRam = 16u << 20;
constexpr std::uint64_t kBaseRam = 16u << 20;  // what files_config() gives
constexpr const char* kKey = kSnapshotKey;

std::shared_ptr<accel::Backend> reference() { return reference_backend(); }
vmm::FunctionVmConfig vm_config(vmm::Platform& platform, bool accel) {
  return files_config(platform, accel);
}

// Whether the exception in e is one of the types listed (the documented errors of a loader).
template <typename T, typename... Rest>
bool is_one_of(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const T&) {
    return true;
  } catch (...) {
    if constexpr (sizeof...(Rest) == 0)
      return false;
    else
      return is_one_of<Rest...>(e);
  }
}

void noop_sink(std::string_view) {}

// $UNIFN_FUZZ_TRACE=1: what each input loaded, or why it was refused, on stderr.
const bool kTrace = [] {
  const char* e = std::getenv("UNIFN_FUZZ_TRACE");
  return e && *e && *e != '0';
}();
void trace(const std::string& what) {
  if (kTrace) std::fprintf(stderr, "%s\n", what.c_str());
}
std::string refused() { return "refused: " + describe(std::current_exception()); }

// ---- 0: unifn images ----

void fuzz_image(std::span<const std::uint8_t> file) {
  std::shared_ptr<const vmm::FunctionImage> image;
  try {
    image = vmm::FunctionImage::from_bytes("fuzz.elf",
                                           std::vector<std::uint8_t>(file.begin(), file.end()));
  } catch (...) {
    trace("image " + refused());
    if (!is_one_of<vmm::ImageError>(std::current_exception()))
      finding("escaped", "FunctionImage::from_bytes threw " + describe(std::current_exception()));
    return;
  }
  FuzzPlatform platform;
  platform.program = [](FuzzMachine& m, std::chrono::steady_clock::time_point) {
    return polite_guest(m);
  };
  std::unique_ptr<vmm::FunctionVm> vm;
  try {
    vm = vmm::FunctionVm::boot(image, vm_config(platform, false), noop_sink);
  } catch (...) {
    trace("boot " + refused());
    if (!is_one_of<vmm::ImageError, vmm::BootError>(std::current_exception()))
      finding("escaped", "booting a loaded image threw " + describe(std::current_exception()));
    return;
  }
  try {
    const std::uint8_t body[] = "request";
    auto out =
        vm->invoke(body, "text/plain", std::chrono::steady_clock::now() + std::chrono::seconds(1));
    trace(fmt::format("image booted and answered {} ({})", out.status, out.stop.message));
    if (!out.ok() || out.body != "ok")
      finding("loaded-state",
              fmt::format("a loaded image's VM did not answer: {}", out.stop.message));
  } catch (...) {
    finding("escaped", "invoking a loaded image threw " + describe(std::current_exception()));
  }
}

// ---- 1, 2: kernels ----

void fuzz_kernel(std::span<const std::uint8_t> file, bool pvh) {
  vmm::GuestMemory mem(kKernelRam);
  try {
    if (pvh) {
      auto elf = vmm::parse_kernel_elf(file, "fuzz-kernel");
      vmm::load_pvh(elf, file, "fuzz-kernel", "console=ttyS0", mem);
    } else {
      vmm::load_multiboot(file, "fuzz-kernel", "console=ttyS0", mem);
    }
    trace("kernel loaded");
  } catch (...) {
    trace("kernel " + refused());
    if (!is_one_of<vmm::ImageError>(std::current_exception()))
      finding("escaped", fmt::format("loading a {} kernel threw {}", pvh ? "PVH" : "multiboot",
                                     describe(std::current_exception())));
  }
}

// ---- 3, 4: snapshots ----

struct Fnv {
  std::uint64_t h = 0xcbf29ce484222325ull;
  void add(std::span<const std::uint8_t> b) {
    for (auto c : b) h = (h ^ c) * 0x100000001b3ull;
  }
  void add_u64(std::uint64_t v) {
    add(std::span(reinterpret_cast<const std::uint8_t*>(&v), 8));
  }  // Safe: integer as bytes.
};

// A real snapshot of the example image (booted by the polite guest on the fuzz platform): its
// RAM's non-zero pages (offset -> page), and where the files go.
struct Base {
  fs::path dir;
  std::vector<std::pair<std::uint64_t, std::vector<std::uint8_t>>> pages;
  std::shared_ptr<const vmm::FunctionImage> image;
  ~Base() {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
};

const Base& base() {
  static const Base b = [] {
    Base b;
    b.image = vmm::FunctionImage::load(UNIFN_FUZZ_IMAGE);
    std::string tmpl = (fs::temp_directory_path() / "unifn-fuzz-files-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    b.dir = tmpl;
    FuzzPlatform platform;
    platform.program = [](FuzzMachine& m, std::chrono::steady_clock::time_point) {
      return polite_guest(m);
    };
    auto vm = vmm::FunctionVm::boot(b.image, vm_config(platform, false), noop_sink);
    const auto& mem = vm->machine().memory();
    static const std::uint8_t zero[kPage] = {};
    for (std::uint64_t off = 0; off < mem.size(); off += kPage) {
      auto page = mem.span(GuestAddr(off), kPage);
      if (std::memcmp(page.data(), zero, kPage) != 0)
        b.pages.emplace_back(off, std::vector<std::uint8_t>(page.begin(), page.end()));
    }
    return b;
  }();
  return b;
}

// Writes the RAM file (the base snapshot's pages, cut or extended to ram bytes) and returns its
// checksum as SnapshotStore computes it: FNV-1a over each non-zero page's offset and bytes.
std::uint64_t write_ram(const fs::path& path, std::uint64_t ram) {
  fs::remove(path);
  vmm::Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd || ::ftruncate(fd.get(), static_cast<off_t>(ram)) != 0)
    throw std::runtime_error("cannot write the RAM file");
  Fnv f;
  for (const auto& [off, page] : base().pages) {
    if (off + kPage > ram) break;
    if (::pwrite(fd.get(), page.data(), kPage, static_cast<off_t>(off)) !=
        static_cast<ssize_t>(kPage))
      throw std::runtime_error("cannot write the RAM file");
    f.add_u64(off);
    f.add(page);
  }
  return f.h;
}

void write_file(const fs::path& path, std::span<const std::uint8_t> bytes) {
  vmm::Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd || ::write(fd.get(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
    throw std::runtime_error("cannot write the state file");
}

// Uses a snapshot that loaded: restore, invoke, the heap calls, reset, invoke again.
void use_snapshot(std::shared_ptr<vmm::Snapshot> snap, bool accel) {
  const auto heap = snap->heap;
  const auto parked = snap->parked_at;
  const auto layout = snap->layout;
  const std::string what = fmt::format(
      "a state file that SnapshotStore::load accepted (ram {:#x}, heap {:#x}-{:#x} brk {:#x} "
      "mmap_low {:#x}, {} free ranges, parked at {:#x}, vCPU state of {} {} bytes)",
      layout.ram, heap.start, heap.end, heap.brk, heap.mmap_low, heap.free.size(), parked,
      vmm::to_string(snap->cpu.platform), snap->cpu.bytes.size());
  // The parts restore() hands on, one at a time, so that a finding says which one load let through.
  try {
    vmm::FakeMachine probe(std::make_unique<vmm::GuestMemory>(kPage));
    probe.apply(snap->cpu);
  } catch (...) {
    return finding("restore-cpu-state",
                   what +
                       ": its vCPU state makes the platform's apply() (FunctionVm::reset) throw " +
                       describe(std::current_exception()));
  }
  for (std::size_t i = 0; i < snap->devices.size(); ++i) try {
      accel::AccelDevice probe(reference(), device_options());
      probe.restore(snap->devices[i]);
    } catch (...) {
      return finding("restore-device-state",
                     what + fmt::format(": the state of device {} makes MmioDevice::restore "
                                        "(FunctionVm::reset) throw {}",
                                        i, describe(std::current_exception())));
    }
  std::unique_ptr<vmm::FunctionVm> vm;
  try {
    vm = vmm::FunctionVm::restore(std::move(snap), base().image,
                                  vm_config(vmm::fake_platform(), accel), noop_sink);
  } catch (...) {
    return finding("restore-threw",
                   what + ": FunctionVm::restore throws " + describe(std::current_exception()));
  }
  auto* fake = dynamic_cast<vmm::FakeMachine*>(&vm->machine());
  if (!fake)
    return finding("escaped", "the fake platform made a machine that is not a FakeMachine");
  const char* step = "invoke";
  std::uint64_t nr = 0;
  try {
    const std::uint8_t body[] = "request";
    fake->script.push_back(vmm::Stop{vmm::StopKind::Timeout, 0, "scripted"});
    vm->invoke(body, "text/plain", std::chrono::steady_clock::now() + std::chrono::seconds(1));
    // The heap calls a guest makes first (the guest's own state is whatever the file said).
    step = "a heap system call";
    const std::uint64_t calls[][3] = {
        {12, 0, 0},
        {12, heap.brk + 0x3000, 0},
        {12, heap.start, 0},
        {9, 0, 0x5000},
        {9, 0, 0x100000},
        {11, heap.mmap_low, 0x2000},
        {11, heap.free.empty() ? heap.end - kPage : heap.free.begin()->first, kPage},
        {9, 0, kPage}};
    for (const auto& c : calls) {
      nr = c[0];
      vmm::GuestRegs r{};
      r.rax = c[0];
      r.rdi = c[1];
      r.rsi = c[2];
      r.rdx = 3;
      r.r10 = 0x22;
      r.r8 = ~std::uint64_t{0};
      fake->deliver_syscall(r);
    }
    nr = 0;
    step = "reset";
    vm->reset();
    step = "a second invoke";
    const auto out =
        vm->invoke(body, "text/plain", std::chrono::steady_clock::now() + std::chrono::seconds(1));
    trace(fmt::format("restored, invoked, reset, invoked: {}", out.stop.message));
  } catch (...) {
    finding("loaded-state",
            fmt::format("after restoring a state file that loaded (ram {:#x}, heap {:#x}-{:#x} brk "
                        "{:#x} mmap_low {:#x}, {} free "
                        "ranges, parked at {:#x}), {}{} threw {}",
                        layout.ram, heap.start, heap.end, heap.brk, heap.mmap_low, heap.free.size(),
                        parked, step, nr ? fmt::format(" ({})", nr) : "",
                        describe(std::current_exception())));
  }
}

void fuzz_snapshot(std::span<const std::uint8_t> in, bool whole_file, bool accel) {
  static const vmm::SnapshotStore store(base().dir);
  std::vector<std::uint8_t> payload(in.begin(), in.end());
  std::uint64_t ram = kBaseRam;
  // GuestLayout::ram comes first, after the layout section's tag (4), length (8) and version (4).
  constexpr std::size_t kRamAt = 4 + 8 + 4;
  if (!whole_file && payload.size() >= kRamAt + 8) std::memcpy(&ram, payload.data() + kRamAt, 8);
  // A plausible size gets a RAM file of that size (sparse); others the base one, which load never
  // reaches.
  const bool plausible = ram > 0 && ram <= UNIFN_RAM_MAX_BYTES && ram % kPage == 0;
  const std::uint64_t ram_sum = write_ram(store.ram_path(kKey), plausible ? ram : kBaseRam);
  std::vector<std::uint8_t> file;
  if (whole_file) {
    file = std::move(payload);
  } else {
    if (payload.size() >= 8) std::memcpy(payload.data() + payload.size() - 8, &ram_sum, 8);
    Fnv sum;
    sum.add(payload);
    vmm::ByteWriter h;
    h.pod(vmm::kSnapshotMagic);
    h.pod(vmm::kSnapshotFormat);
    h.str(kKey);
    h.u64(payload.size());
    h.u64(sum.h);
    file = h.take();
    file.insert(file.end(), payload.begin(), payload.end());
  }
  write_file(store.state_path(kKey), file);
  std::shared_ptr<vmm::Snapshot> snap;
  try {
    snap = store.load(kKey, vm_config(vmm::fake_platform(), accel),
                      base().image.get());  // as get_or_build loads
  } catch (...) {
    trace("snapshot " + refused());
    if (!is_one_of<std::runtime_error>(std::current_exception()))
      finding("escaped", "SnapshotStore::load threw " + describe(std::current_exception()));
    return;
  }
  trace("snapshot loaded");
  use_snapshot(std::move(snap), accel);
}

// ---- 5: device state ----

void fuzz_device(std::span<const std::uint8_t> in) {
  Reader r(in.data(), in.size());
  const auto n = r.take<std::uint16_t>();
  const auto state_chars = r.bytes(n);
  const std::span<const std::uint8_t> state(
      reinterpret_cast<const std::uint8_t*>(state_chars.data()),
      state_chars.size());  // Safe: chars as bytes.
  const auto ram_chars = r.rest();
  accel::AccelDevice dev(reference(), device_options());
  const auto before = dev.save();
  const auto problem =
      dev.check(state);  // what the snapshot store asks: restore must agree with it
  try {
    dev.restore(state);
  } catch (...) {
    trace("device state " + refused());
    if (!is_one_of<std::runtime_error>(std::current_exception()))
      finding("escaped", "MmioDevice::restore threw " + describe(std::current_exception()));
    else if (!problem)
      finding("device-check", "MmioDevice::check passed a state that restore refused: " +
                                  describe(std::current_exception()));
    if (dev.save() != before) finding("device-check", "a refused restore changed the device");
    return;
  }
  if (problem)
    finding("device-check", "MmioDevice::restore took a state that check refused: " + *problem);
  trace("device state restored");
  try {
    const auto saved = dev.save();
    accel::AccelDevice copy(reference(), device_options());
    copy.restore(saved);
    if (copy.save() != saved)
      finding("device", "a restored device's state does not survive save and restore unchanged");
    vmm::GuestMemory mem(1u << 20);
    mem.write(
        GuestAddr(0),
        std::span(reinterpret_cast<const std::uint8_t*>(ram_chars.data()),  // Safe: chars as bytes.
                  std::min<std::size_t>(ram_chars.size(), mem.size())));
    for (std::uint64_t reg = 0; reg < 0x100; reg += 4) (void)dev.read32(mem, reg);
    dev.write32(mem, vmm::virtio::reg::kQueueNotify, 0);
    dev.write32(mem, vmm::virtio::reg::kQueueNotify, 0);
    (void)dev.save();
  } catch (...) {
    finding("device",
            "a device whose state restored threw when used: " + describe(std::current_exception()));
  }
}

// ---- 6: KVM vCPU state ----

void fuzz_cpu_state(std::span<const std::uint8_t> in) {
  vmm::KvmCpuState s;
  try {
    s = vmm::KvmCpuState::from_bytes(in);
  } catch (...) {
    trace("vCPU state " + refused());
    if (!is_one_of<std::runtime_error>(std::current_exception()))
      finding("escaped", "KvmCpuState::from_bytes threw " + describe(std::current_exception()));
    return;
  }
  trace("vCPU state loaded");
  if (s.to_bytes() != std::vector<std::uint8_t>(in.begin(), in.end()))
    finding("cpu-state", "a vCPU state that loaded does not convert back to the same bytes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t tag = data[0];
  const std::span<const std::uint8_t> rest(data + 1, size - 1);
  const bool accel = tag & 0x10;
  switch (tag & 7) {
    case 0:
      fuzz_image(rest);
      break;
    case 1:
      fuzz_kernel(rest, false);
      break;
    case 2:
      fuzz_kernel(rest, true);
      break;
    case 3:
      fuzz_snapshot(rest, false, accel);
      break;
    case 4:
      fuzz_snapshot(rest, true, accel);
      break;
    case 5:
      fuzz_device(rest);
      break;
    case 6:
      fuzz_cpu_state(rest);
      break;
    default:
      break;
  }
  return 0;
}
