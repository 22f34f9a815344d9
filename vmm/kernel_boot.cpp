// Third-party kernel boot: pick PVH or multiboot1, load, wire COM1 and isa-debug-exit, run to the
// end.
#include "vmm/kernel_boot.h"

#include <fmt/format.h>

#include <memory>
#include <optional>
#include <stdexcept>

#include <unifn/abi.h>

#include "vmm/devices/debug_exit.h"
#include "vmm/devices/serial.h"
#include "vmm/loader/elf.h"
#include "vmm/loader/multiboot.h"
#include "vmm/loader/pvh.h"
#include "vmm/platform/kvm/kvm_machine.h"
#include "vmm/x86/protected_mode.h"

namespace unifn::vmm {

namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kMinRam = 2ull << 20;

// What an image holds, worked out once: the ELF headers when they parse, and the multiboot header.
struct Probe {
  int elf_class = 0;             // 1 ELF32, 2 ELF64, 0 not an ELF file, -1 an ELF of another class
  std::optional<KernelElf> elf;  // set when the ELF headers parse
  std::optional<ImageError> elf_error;
  std::optional<MultibootHeader> multiboot;
};

Probe probe(std::span<const std::uint8_t> bytes, const std::string& name) {
  Probe p;
  if (is_elf(bytes)) {
    p.elf_class = elf_class(bytes) ? elf_class(bytes) : -1;
    try {
      p.elf = parse_kernel_elf(bytes, name);
    } catch (const ImageError& e) {
      p.elf_error = e;
    }
  }
  p.multiboot = find_multiboot_header(bytes);
  return p;
}

}  // namespace

bool is_kernel_image(std::span<const std::uint8_t> bytes) {
  Probe p = probe(bytes, "image");
  if (p.elf_class == 1)
    return true;  // unifn functions are ELF64: any 32-bit ELF is meant as a kernel
  if (p.elf_class == 0)
    return p.multiboot.has_value();  // a raw multiboot binary (checked when booted)
  if (p.elf && p.elf->unifn_note) return false;
  return (p.elf && p.elf->pvh_entry) || p.multiboot.has_value();
}

KernelResult boot_kernel(const std::string& name, std::span<const std::uint8_t> bytes,
                         const KernelBootConfig& cfg) {
  const auto start = std::chrono::steady_clock::now();
  const std::uint64_t ram = (cfg.memory_bytes + kPage - 1) / kPage * kPage;
  if (ram < kMinRam)
    throw std::invalid_argument(fmt::format(
        "{}: {} KiB of guest RAM is too little for a kernel (2 MiB at least)", name, ram >> 10));
  if (ram > UNIFN_RAM_MAX_BYTES)
    throw std::invalid_argument(
        fmt::format("{}: {} MiB of guest RAM is more than the {} MiB a unifn VM can have", name,
                    ram >> 20, UNIFN_RAM_MAX_BYTES >> 20));

  Probe p = probe(bytes, name);
  const bool pvh =
      p.elf && p.elf->pvh_entry && !p.elf->unifn_note;  // PVH wins over multiboot, as in QEMU
  if (!pvh && !p.multiboot) {
    if (p.elf_error) throw *p.elf_error;
    if (p.elf_class == 0)
      throw ImageError(
          fmt::format("{}: not an ELF file, and no multiboot header in its first 8 KiB "
                      "(no multiboot header and no PVH note)",
                      name));
    if (p.elf && p.elf->unifn_note)
      throw ImageError(
          fmt::format("{}: a unifn function image, not a kernel (run it as a function)", name));
    if (p.elf_class == 1)
      throw ImageError(fmt::format(
          "{}: 32-bit ELF with no multiboot header in its first 8 KiB and no PVH note", name));
    throw ImageError(
        fmt::format("{}: 64-bit ELF with no PVH note and no multiboot header (and no unifn note: "
                    "not a function either)",
                    name));
  }

  // Multiboot kernels get their own file name first, as argv[0], the way QEMU and GRUB pass it.
  std::string cmdline = cfg.cmdline;
  if (!pvh) cmdline = cfg.cmdline.empty() ? name : fmt::format("{} {}", name, cfg.cmdline);
  if (cmdline.size() >= kernel_layout::kCmdlineMax)
    throw std::invalid_argument(
        fmt::format("{}: the kernel command line of {} bytes is longer than the {} bytes unifn "
                    "passes",
                    name, cmdline.size(), kernel_layout::kCmdlineMax - 1));

  auto ram_mem = std::make_unique<GuestMemory>(ram);
  auto& mem = *ram_mem;
  ProtectedModeEntry entry;
  if (pvh) {
    auto boot = load_pvh(*p.elf, bytes, name, cmdline, mem);
    entry.eip = boot.entry;
    entry.ebx = boot.start_info_gpa;
  } else {
    auto boot = load_multiboot(bytes, name, cmdline, mem);
    entry.eip = boot.entry;
    entry.eax = kMultibootBootMagic;
    entry.ebx = boot.info_gpa;
  }

  // Checked once the image is known to be good, so that a bad one is refused for what it is.
  Platform& platform = cfg.platform ? *cfg.platform : default_platform();
  if (platform.kind() != PlatformKind::Kvm)
    throw ImageError(fmt::format(
        "{}: a {} kernel runs ring-0 code, which the {} platform cannot run; it needs KVM "
        "(/dev/kvm)",
        name, pvh ? "PVH" : "multiboot", platform.name()));
  KvmMachine machine(Kvm::instance(), std::move(ram_mem));
  Serial16550 com1(cfg.serial);
  com1.attach(machine);
  DebugExit debug_exit;
  debug_exit.attach(machine);
  enter_protected_mode(machine.vcpu(), mem, entry);

  Stop stop = machine.run(start + cfg.timeout);
  com1.flush();
  KernelResult result;
  switch (stop.kind) {
    case StopKind::Exited:
      result.exit_status = stop.exit_status;
      break;
    case StopKind::Halted:
      result.exit_status = 0;
      break;
    case StopKind::Timeout:
      result.exit_status = 124;
      break;
    default:
      result.exit_status = 1;
      break;
  }
  result.stop = std::move(stop);
  return result;
}

}  // namespace unifn::vmm
