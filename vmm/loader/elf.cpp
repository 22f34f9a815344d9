// ELF64 header validation and segment loading, with every offset and size overflow-checked.
#include "vmm/loader/elf.h"

#include <elf.h>

#include <cstring>
#include <fmt/format.h>
#include <filesystem>
#include <fstream>

#include <unifn/abi.h>

#include "vmm/loader/file_bytes.h"

namespace unifn::vmm {

namespace {

constexpr std::uint64_t kMaxImageBytes = 512ull << 20;

using file_bytes::align4;
using file_bytes::fits;
using file_bytes::read_at;

// Walks the notes in [off, off+len) looking for the unifn ABI note and Xen's PVH entry.
void scan_notes(std::span<const std::uint8_t> file, std::uint64_t off, std::uint64_t len,
                ElfImage& img) {
  std::uint64_t p = off, end = off + len;
  while (p + sizeof(Elf64_Nhdr) <= end) {
    auto nh = read_at<Elf64_Nhdr>(file, p);
    std::uint64_t name_off = p + sizeof(Elf64_Nhdr);
    std::uint64_t desc_off = name_off + align4(nh.n_namesz);
    std::uint64_t next = desc_off + align4(nh.n_descsz);
    if (nh.n_namesz > len || nh.n_descsz > len || next > end) return;  // malformed: stop scanning
    std::string nm(
        reinterpret_cast<const char*>(file.data() + name_off),  // Safe: bounded bytes as chars.
        nh.n_namesz ? nh.n_namesz - 1 : 0);
    if (nm == UNIFN_NOTE_NAME && nh.n_type == UNIFN_NOTE_TYPE_ABI && nh.n_descsz >= 4)
      img.unifn_abi = read_at<std::uint32_t>(file, desc_off);
    if (nm == "Xen" && nh.n_type == 18 /* XEN_ELFNOTE_PHYS32_ENTRY */ && nh.n_descsz >= 4)
      img.pvh_entry = read_at<std::uint32_t>(file, desc_off);
    p = next;
  }
}

}  // namespace

bool is_elf(std::span<const std::uint8_t> file) {
  return file.size() >= SELFMAG && std::memcmp(file.data(), ELFMAG, SELFMAG) == 0;
}

int elf_class(std::span<const std::uint8_t> file) {
  if (!is_elf(file) || file.size() <= EI_CLASS) return 0;
  return file[EI_CLASS] == ELFCLASS32 ? 1 : file[EI_CLASS] == ELFCLASS64 ? 2 : 0;
}

ElfImage parse_elf64(std::span<const std::uint8_t> file, const std::string& name) {
  auto bad = [&](std::string what) { return ImageError(fmt::format("{}: {}", name, what)); };
  if (!is_elf(file)) throw bad("not an ELF file (bad magic)");
  if (file.size() < sizeof(Elf64_Ehdr)) throw bad("truncated ELF header");
  auto eh = read_at<Elf64_Ehdr>(file, 0);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) throw bad("not a 64-bit ELF (ELFCLASS64 expected)");
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB) throw bad("not little-endian");
  if (eh.e_machine != EM_X86_64)
    throw bad(fmt::format("wrong machine {} (x86-64 expected)", eh.e_machine));
  if (eh.e_type != ET_EXEC)
    throw bad("not a static executable (ET_EXEC expected; build with -static -no-pie)");
  if (eh.e_phentsize != sizeof(Elf64_Phdr))
    throw bad(fmt::format("program header size {} is not {}", eh.e_phentsize, sizeof(Elf64_Phdr)));
  if (eh.e_phnum == 0 || eh.e_phnum > 64)
    throw bad(fmt::format("{} program headers (1 to 64 expected)", eh.e_phnum));
  const std::uint64_t table = std::uint64_t(eh.e_phnum) * eh.e_phentsize;
  if (!fits(eh.e_phoff, table, file.size()))
    throw bad("program header table runs past the end of the file (truncated?)");

  ElfImage img;
  img.entry = eh.e_entry;
  img.phnum = eh.e_phnum;
  img.phentsize = eh.e_phentsize;
  img.phdrs.assign(file.begin() + static_cast<std::ptrdiff_t>(eh.e_phoff),
                   file.begin() + static_cast<std::ptrdiff_t>(eh.e_phoff + table));
  bool entry_in_segment = false;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    auto ph = read_at<Elf64_Phdr>(file, eh.e_phoff + std::uint64_t(i) * eh.e_phentsize);
    if (ph.p_type == PT_NOTE) {
      if (!fits(ph.p_offset, ph.p_filesz, file.size()))
        throw bad(fmt::format("note segment {} runs past the end of the file", i));
      scan_notes(file, ph.p_offset, ph.p_filesz, img);
    }
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    if (ph.p_filesz > ph.p_memsz)
      throw bad(
          fmt::format("segment {} has filesz {:#x} > memsz {:#x}", i, ph.p_filesz, ph.p_memsz));
    if (!fits(ph.p_offset, ph.p_filesz, file.size()))
      throw bad(fmt::format(
          "segment {} (offset {:#x}, {} bytes) runs past the end of the file (truncated?)", i,
          ph.p_offset, ph.p_filesz));
    const std::uint64_t gpa = ph.p_paddr ? ph.p_paddr : ph.p_vaddr;
    if (gpa < UNIFN_IMAGE_MIN_GPA)
      throw bad(fmt::format("segment {} at {:#x} is below 1 MiB", i, gpa));
    if (ph.p_memsz > UNIFN_RAM_MAX_BYTES || gpa > UNIFN_RAM_MAX_BYTES - ph.p_memsz)
      throw bad(fmt::format("segment {} at {:#x} of {:#x} bytes is beyond the largest guest RAM", i,
                            gpa, ph.p_memsz));
    img.segments.push_back({ph.p_offset, ph.p_filesz, gpa, ph.p_memsz, ph.p_flags});
    img.end = std::max(img.end, gpa + ph.p_memsz);
    if (eh.e_entry >= ph.p_vaddr && eh.e_entry < ph.p_vaddr + ph.p_memsz) entry_in_segment = true;
  }
  if (img.segments.empty()) throw bad("no loadable segment");
  if (!entry_in_segment && !img.pvh_entry)
    throw bad(fmt::format("entry point {:#x} is in no loadable segment", eh.e_entry));
  return img;
}

void load_segments(const ElfImage& image, std::span<const std::uint8_t> file, GuestMemory& mem,
                   const std::string& name) {
  for (const auto& s : image.segments) {
    if (!mem.contains(GuestAddr(s.gpa), s.mem_size))
      throw ImageError(
          fmt::format("{}: segment at {:#x} of {:#x} bytes does not fit in {} MiB of guest RAM",
                      name, s.gpa, s.mem_size, mem.size() >> 20));
    mem.write(GuestAddr(s.gpa), file.subspan(s.file_offset, s.file_size));
    mem.fill(GuestAddr(s.gpa + s.file_size), 0, s.mem_size - s.file_size);
  }
}

std::vector<std::uint8_t> read_image_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw ImageError(fmt::format("{}: is a directory, not an image", path));
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in)
    throw ImageError(fmt::format("{}: cannot open the image ({})", path, std::strerror(errno)));
  auto size = static_cast<std::uint64_t>(in.tellg());
  if (size > kMaxImageBytes)
    throw ImageError(
        fmt::format("{}: image of {} bytes is larger than the 512 MiB limit", path, size));
  std::vector<std::uint8_t> bytes(size);
  in.seekg(0);
  // Safe: a byte buffer read as chars.
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
    throw ImageError(fmt::format("{}: cannot read the image", path));
  return bytes;
}

}  // namespace unifn::vmm
