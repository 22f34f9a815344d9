// Multiboot1 loader and the ELF32/ELF64 kernel parser: every offset and size overflow-checked.
#include "vmm/loader/multiboot.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <fmt/format.h>

#include <unifn/abi.h>

#include "vmm/loader/file_bytes.h"
#include "vmm/x86/protected_mode.h"

namespace unifn::vmm {

namespace {

using file_bytes::align4;
using file_bytes::fits;
using file_bytes::read_at;

const char* machine_name(unsigned m) {
  switch (m) {
    case EM_386:
      return "x86";
    case EM_X86_64:
      return "x86-64";
    case EM_ARM:
      return "ARM";
    case EM_AARCH64:
      return "AArch64";
    case EM_RISCV:
      return "RISC-V";
    case EM_PPC:
      return "PowerPC";
    case EM_PPC64:
      return "PowerPC64";
    case EM_MIPS:
      return "MIPS";
    default:
      return "unknown";
  }
}

// Walks the notes of one PT_NOTE segment for the Xen PVH entry and the unifn ABI note.
void scan_notes(std::span<const std::uint8_t> file, std::uint64_t off, std::uint64_t len,
                KernelElf& elf) {
  const std::uint64_t end = off + len;
  std::uint64_t p = off;
  while (fits(p, sizeof(Elf32_Nhdr), end)) {  // Elf32_Nhdr and Elf64_Nhdr are the same 12 bytes
    auto nh = read_at<Elf32_Nhdr>(file, p);
    const std::uint64_t name_off = p + sizeof(Elf32_Nhdr);
    if (!fits(name_off, align4(nh.n_namesz), end)) return;  // malformed: stop scanning
    const std::uint64_t desc_off = name_off + align4(nh.n_namesz);
    if (!fits(desc_off, align4(nh.n_descsz), end)) return;
    // Safe: n_namesz bytes inside the file, checked above, viewed as chars.
    std::string_view nm(reinterpret_cast<const char*>(file.data() + name_off), nh.n_namesz);
    if (!nm.empty() && nm.back() == '\0') nm.remove_suffix(1);
    if (nm == "Xen" && nh.n_type == 18 /* XEN_ELFNOTE_PHYS32_ENTRY */) {
      // Linux writes a pointer-sized value (8 bytes in ELF64), others a 32-bit one.
      if (nh.n_descsz >= 8)
        elf.pvh_entry = read_at<std::uint64_t>(file, desc_off);
      else if (nh.n_descsz >= 4)
        elf.pvh_entry = read_at<std::uint32_t>(file, desc_off);
    }
    if (nm == UNIFN_NOTE_NAME && nh.n_type == UNIFN_NOTE_TYPE_ABI) elf.unifn_note = true;
    p = desc_off + align4(nh.n_descsz);
  }
}

template <typename Ehdr, typename Phdr>
KernelElf parse_elf(std::span<const std::uint8_t> file, const std::string& name, int cls,
                    unsigned want_machine) {
  auto bad = [&](std::string what) { return ImageError(fmt::format("{}: {}", name, what)); };
  if (file.size() < sizeof(Ehdr))
    throw bad(fmt::format("truncated ELF header ({} bytes)", file.size()));
  auto eh = read_at<Ehdr>(file, 0);
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB) throw bad("not a little-endian ELF");
  if (eh.e_machine != want_machine)
    throw bad(fmt::format("wrong machine {} ({}) for a {}-bit ELF ({} expected)", eh.e_machine,
                          machine_name(eh.e_machine), cls == 1 ? 32 : 64,
                          machine_name(want_machine)));
  if (eh.e_type != ET_EXEC)
    throw bad(fmt::format("ELF type {} is not an executable (ET_EXEC expected)", eh.e_type));
  if (eh.e_phentsize != sizeof(Phdr))
    throw bad(fmt::format("program header size {} is not {}", eh.e_phentsize, sizeof(Phdr)));
  if (eh.e_phnum == 0 || eh.e_phnum > 128)
    throw bad(fmt::format("{} program headers (1 to 128 expected)", eh.e_phnum));
  const std::uint64_t table = std::uint64_t(eh.e_phnum) * eh.e_phentsize;
  if (!fits(eh.e_phoff, table, file.size()))
    throw bad("program header table runs past the end of the file (truncated?)");

  KernelElf elf;
  elf.elf_class = cls;
  elf.entry = eh.e_entry;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    auto ph = read_at<Phdr>(file, eh.e_phoff + std::uint64_t(i) * eh.e_phentsize);
    if (ph.p_type == PT_NOTE) {
      if (!fits(ph.p_offset, ph.p_filesz, file.size()))
        throw bad(fmt::format("note segment {} runs past the end of the file (truncated?)", i));
      scan_notes(file, ph.p_offset, ph.p_filesz, elf);
    }
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    if (ph.p_filesz > ph.p_memsz)
      throw bad(fmt::format("segment {} has filesz {:#x} > memsz {:#x}", i,
                            std::uint64_t(ph.p_filesz), std::uint64_t(ph.p_memsz)));
    if (!fits(ph.p_offset, ph.p_filesz, file.size()))
      throw bad(fmt::format(
          "segment {} (offset {:#x}, {} bytes) runs past the end of the file (truncated?)", i,
          std::uint64_t(ph.p_offset), std::uint64_t(ph.p_filesz)));
    const std::uint64_t gpa = ph.p_paddr, memsz = ph.p_memsz;
    if (gpa + memsz < gpa)
      throw bad(fmt::format("segment {} at {:#x} of {:#x} bytes wraps around the address space", i,
                            gpa, memsz));
    elf.segments.push_back({ph.p_offset, ph.p_filesz, gpa, ph.p_vaddr, memsz});
  }
  if (elf.segments.empty()) throw bad("no loadable segment");
  return elf;
}

// "start-end" of a guest range, for messages.
std::string range(std::uint64_t a, std::uint64_t len) {
  return fmt::format("{:#x}-{:#x}", a, a + len);
}

}  // namespace

KernelElf parse_kernel_elf(std::span<const std::uint8_t> file, const std::string& name) {
  if (file.size() < SELFMAG || std::memcmp(file.data(), ELFMAG, SELFMAG) != 0)
    throw ImageError(fmt::format("{}: not an ELF file (bad magic)", name));
  if (file.size() <= EI_CLASS)
    throw ImageError(fmt::format("{}: truncated ELF header ({} bytes)", name, file.size()));
  if (file[EI_CLASS] == ELFCLASS32) return parse_elf<Elf32_Ehdr, Elf32_Phdr>(file, name, 1, EM_386);
  if (file[EI_CLASS] == ELFCLASS64)
    return parse_elf<Elf64_Ehdr, Elf64_Phdr>(file, name, 2, EM_X86_64);
  throw ImageError(fmt::format("{}: ELF class {} is neither 32- nor 64-bit", name, file[EI_CLASS]));
}

void load_kernel_segments(std::span<const KernelSegment> segments,
                          std::span<const std::uint8_t> file, GuestMemory& mem,
                          const std::string& name) {
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const auto& s = segments[i];
    if (!mem.contains(GuestAddr(s.gpa), s.mem_size))
      throw ImageError(fmt::format(
          "{}: segment {} at {} is outside the {} MiB of guest RAM (a bigger --memory may help)",
          name, i, range(s.gpa, s.mem_size), mem.size() >> 20));
    if (s.gpa < kernel_layout::kReservedEnd)
      throw ImageError(
          fmt::format("{}: segment {} at {} overlaps the boot structures unifn places at 0x0-{:#x}",
                      name, i, range(s.gpa, s.mem_size), kernel_layout::kReservedEnd));
    mem.write(GuestAddr(s.gpa), file.subspan(s.file_offset, s.file_size));
    mem.fill(GuestAddr(s.gpa + s.file_size), 0, s.mem_size - s.file_size);
  }
}

std::uint64_t kernel_entry_gpa(const KernelElf& elf, const std::string& name) {
  for (const auto& s : elf.segments) {
    if (elf.entry >= s.vaddr && elf.entry - s.vaddr < s.mem_size)
      return s.gpa + (elf.entry - s.vaddr);
  }
  throw ImageError(fmt::format("{}: entry point {:#x} is in no loadable segment", name, elf.entry));
}

std::optional<MultibootHeader> find_multiboot_header(std::span<const std::uint8_t> file) {
  const std::uint64_t limit = std::min<std::uint64_t>(file.size(), kMultibootSearch);
  std::optional<MultibootHeader> first_bad;
  for (std::uint64_t off = 0; off + 12 <= limit; off += 4) {
    if (read_at<std::uint32_t>(file, off) != kMultibootHeaderMagic) continue;
    MultibootHeader h;
    h.file_offset = off;
    h.magic = kMultibootHeaderMagic;
    h.flags = read_at<std::uint32_t>(file, off + 4);
    h.checksum = read_at<std::uint32_t>(file, off + 8);
    if ((h.flags & mb_flag::kAoutKludge) && fits(off, 32, file.size())) {
      h.header_addr = read_at<std::uint32_t>(file, off + 12);
      h.load_addr = read_at<std::uint32_t>(file, off + 16);
      h.load_end_addr = read_at<std::uint32_t>(file, off + 20);
      h.bss_end_addr = read_at<std::uint32_t>(file, off + 24);
      h.entry_addr = read_at<std::uint32_t>(file, off + 28);
    }
    if (h.checksum_ok()) return h;
    if (!first_bad) first_bad = h;
  }
  return first_bad;
}

void check_multiboot_header(const MultibootHeader& h, std::span<const std::uint8_t> file,
                            const std::string& name) {
  if (!h.checksum_ok())
    throw ImageError(fmt::format(
        "{}: the multiboot header at offset {:#x} has a wrong checksum ({:#x} + {:#x} + {:#x} "
        "is {:#x}, not 0)",
        name, h.file_offset, h.magic, h.flags, h.checksum,
        static_cast<std::uint32_t>(h.magic + h.flags + h.checksum)));
  if (auto unknown = h.flags & mb_flag::kRequiredMask & ~mb_flag::kSupportedRequired)
    throw ImageError(fmt::format(
        "{}: the multiboot header requires features unifn cannot provide (flag bits {:#x})", name,
        unknown));
  if (h.flags & mb_flag::kAoutKludge) {
    if (!fits(h.file_offset, 32, std::min<std::uint64_t>(file.size(), kMultibootSearch)))
      throw ImageError(fmt::format(
          "{}: the multiboot header at offset {:#x} is cut off before its address fields", name,
          h.file_offset));
  }
}

std::vector<MemoryRange> kernel_memory_map(std::uint64_t ram_bytes) {
  return {{0, 0xA0000, 1}, {0xF0000, 0x10000, 2}, {0x100000, ram_bytes - 0x100000, 1}};
}

std::uint32_t write_multiboot_info(GuestMemory& mem, const std::string& cmdline) {
  using namespace kernel_layout;
  if (cmdline.size() >= kCmdlineMax)
    throw std::invalid_argument(
        fmt::format("the kernel command line of {} bytes is longer than the {} bytes unifn passes",
                    cmdline.size(), kCmdlineMax - 1));
  // Safe: chars as bytes, with the NUL.
  mem.write(GuestAddr(kCmdline),
            std::span(reinterpret_cast<const std::uint8_t*>(cmdline.c_str()), cmdline.size() + 1));
  static constexpr char kName[] = "unifn";
  // Safe: chars as bytes, with the NUL.
  mem.write(GuestAddr(kLoaderName),
            std::span(reinterpret_cast<const std::uint8_t*>(kName), sizeof(kName)));

  const auto map = kernel_memory_map(mem.size());
  std::uint64_t at = kMemMap;
  for (const auto& r : map) {
    mem.write_obj(GuestAddr(at), MultibootMmapEntry{20, r.addr, r.len, r.type});
    at += sizeof(MultibootMmapEntry);
  }

  MultibootInfo info{};
  info.flags = mb_info::kMemory | mb_info::kCmdline | mb_info::kMmap | mb_info::kLoaderName;
  info.mem_lower = 640;
  // Upper memory runs from 1 MiB to the first hole; a 32-bit field in KiB.
  info.mem_upper = static_cast<std::uint32_t>(
      std::min<std::uint64_t>((mem.size() - 0x100000) >> 10, 0xFFFFFFFFu));
  info.cmdline = static_cast<std::uint32_t>(kCmdline);
  info.mmap_addr = static_cast<std::uint32_t>(kMemMap);
  info.mmap_length = static_cast<std::uint32_t>(map.size() * sizeof(MultibootMmapEntry));
  info.boot_loader_name = static_cast<std::uint32_t>(kLoaderName);
  mem.write_obj(GuestAddr(kBootInfo), info);
  return static_cast<std::uint32_t>(kBootInfo);
}

MultibootBoot load_multiboot(std::span<const std::uint8_t> file, const std::string& name,
                             const std::string& cmdline, GuestMemory& mem) {
  auto h = find_multiboot_header(file);
  if (!h) throw ImageError(fmt::format("{}: no multiboot header in the first 8 KiB", name));
  check_multiboot_header(*h, file, name);

  MultibootBoot boot;
  if (h->flags & mb_flag::kAoutKludge) {
    // The header says where it wants to be: header_addr is the load address of the magic itself.
    auto bad = [&](std::string what) {
      return ImageError(fmt::format("{}: multiboot address fields: {}", name, what));
    };
    if (h->load_addr > h->header_addr)
      throw bad(
          fmt::format("load_addr {:#x} is above header_addr {:#x}", h->load_addr, h->header_addr));
    const std::uint64_t lead = std::uint64_t(h->header_addr) - h->load_addr;
    if (lead > h->file_offset)
      throw bad(fmt::format("header_addr - load_addr = {:#x} reaches before the start of the file",
                            lead));
    const std::uint64_t file_start = h->file_offset - lead;
    std::uint64_t load_size = file.size() - file_start;
    if (h->load_end_addr != 0) {
      if (h->load_end_addr < h->load_addr)
        throw bad(fmt::format("load_end_addr {:#x} is below load_addr {:#x}", h->load_end_addr,
                              h->load_addr));
      load_size = std::uint64_t(h->load_end_addr) - h->load_addr;
      if (!fits(file_start, load_size, file.size()))
        throw bad(
            fmt::format("the image to load ({:#x} bytes from offset {:#x}) runs past the end of "
                        "the file (truncated?)",
                        load_size, file_start));
    }
    std::uint64_t mem_size = load_size;
    if (h->bss_end_addr != 0) {
      if (h->bss_end_addr < h->load_addr + load_size)
        throw bad(fmt::format("bss_end_addr {:#x} is below the end of the loaded image {:#x}",
                              h->bss_end_addr, h->load_addr + load_size));
      mem_size = std::uint64_t(h->bss_end_addr) - h->load_addr;
    }
    if (h->entry_addr < h->load_addr || h->entry_addr - h->load_addr >= mem_size)
      throw bad(fmt::format("entry_addr {:#x} is outside the loaded image {}", h->entry_addr,
                            range(h->load_addr, mem_size)));
    const KernelSegment seg{file_start, load_size, h->load_addr, h->load_addr, mem_size};
    load_kernel_segments(std::span(&seg, 1), file, mem, name);
    boot.entry = h->entry_addr;
  } else {
    if (file.size() >= SELFMAG && std::memcmp(file.data(), ELFMAG, SELFMAG) == 0 &&
        file.size() > EI_CLASS && file[EI_CLASS] == ELFCLASS64)
      throw ImageError(fmt::format(
          "{}: a 64-bit ELF multiboot kernel needs the a.out address fields (flag bit 16); "
          "multiboot loads 32-bit ELF kernels",
          name));
    if (file.size() < SELFMAG || std::memcmp(file.data(), ELFMAG, SELFMAG) != 0)
      throw ImageError(fmt::format(
          "{}: not an ELF file, and its multiboot header has no address fields (flag bit 16) "
          "to say where to load it",
          name));
    auto elf = parse_kernel_elf(file, name);
    load_kernel_segments(elf.segments, file, mem, name);
    const std::uint64_t entry = kernel_entry_gpa(elf, name);
    if (entry > 0xFFFFFFFFu)
      throw ImageError(fmt::format("{}: entry point {:#x} is above 4 GiB", name, entry));
    boot.entry = static_cast<std::uint32_t>(entry);
  }
  boot.info_gpa = write_multiboot_info(mem, cmdline);
  return boot;
}

}  // namespace unifn::vmm
