// Builders for small kernel images in tests: ELF32/ELF64 with segments and notes, multiboot
// headers.
#pragma once

#include <elf.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace unifn::test {

using Bytes = std::vector<std::uint8_t>;

inline void put32(Bytes& b, std::size_t off, std::uint32_t v) {
  if (b.size() < off + 4) b.resize(off + 4);
  std::memcpy(b.data() + off, &v, 4);
}
inline void put16(Bytes& b, std::size_t off, std::uint16_t v) {
  if (b.size() < off + 2) b.resize(off + 2);
  std::memcpy(b.data() + off, &v, 2);
}
inline std::uint32_t get32(const Bytes& b, std::size_t off) {
  std::uint32_t v;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}
template <typename T>
void append(Bytes& b, const T& v) {
  // resize + memcpy rather than insert: GCC 12 warns falsely about insert into an empty vector.
  const std::size_t at = b.size();
  b.resize(at + sizeof(T));
  std::memcpy(b.data() + at, &v, sizeof(T));
}

// A multiboot header: magic, flags, checksum (+ checksum_delta to break it), and the a.out fields
// when flags has bit 16.
struct MbFields {
  std::uint32_t header_addr = 0, load_addr = 0, load_end_addr = 0, bss_end_addr = 0, entry_addr = 0;
};
inline Bytes multiboot_header(std::uint32_t flags, std::uint32_t checksum_delta = 0,
                              MbFields f = {}) {
  Bytes b;
  const std::uint32_t magic = 0x1BADB002;
  append(b, magic);
  append(b, flags);
  append(b, static_cast<std::uint32_t>(0u - (magic + flags) + checksum_delta));
  if (flags & (1u << 16)) {
    append(b, f.header_addr);
    append(b, f.load_addr);
    append(b, f.load_end_addr);
    append(b, f.bss_end_addr);
    append(b, f.entry_addr);
  }
  return b;
}

// A raw (non-ELF) multiboot kernel using the a.out kludge: the header at offset 0, loaded at
// `base`, code right after the header, `bss` zero bytes after the file.
inline Bytes aout_kernel(const Bytes& code, std::uint32_t base = 0x100000,
                         std::uint32_t extra_flags = 0, std::uint32_t bss = 0) {
  const std::uint32_t flags = 0x00010003u | extra_flags;
  MbFields f;
  f.header_addr = base;
  f.load_addr = base;
  f.load_end_addr = 0;  // the whole file
  f.bss_end_addr = bss ? base + 32 + static_cast<std::uint32_t>(code.size()) + bss : 0;
  f.entry_addr = base + 32;
  Bytes b = multiboot_header(flags, 0, f);
  b.insert(b.end(), code.begin(), code.end());
  return b;
}

struct Note {
  std::string name;
  std::uint32_t type = 0;
  Bytes desc;
};
inline Bytes pvh_note_desc64(std::uint64_t entry) {
  Bytes d;
  append(d, entry);
  return d;
}
inline Bytes pvh_note_desc32(std::uint32_t entry) {
  Bytes d;
  append(d, entry);
  return d;
}

struct Segment {
  std::uint64_t paddr = 0x100000;
  std::uint64_t vaddr = 0x100000;
  Bytes data;
  std::uint64_t memsz = 0;  // 0: data.size()
};

// An ELF executable of either class with PT_LOAD segments and one PT_NOTE holding `notes`.
template <typename Ehdr, typename Phdr, typename Nhdr>
Bytes elf_image(unsigned char cls, std::uint16_t machine, std::uint64_t entry,
                const std::vector<Segment>& segs, const std::vector<Note>& notes) {
  const std::size_t nph = segs.size() + (notes.empty() ? 0 : 1);
  Bytes notes_bytes;
  for (const auto& n : notes) {
    Nhdr nh{};
    nh.n_namesz = static_cast<decltype(nh.n_namesz)>(n.name.size() + 1);
    nh.n_descsz = static_cast<decltype(nh.n_descsz)>(n.desc.size());
    nh.n_type = n.type;
    append(notes_bytes, nh);
    notes_bytes.insert(notes_bytes.end(), n.name.begin(), n.name.end());
    notes_bytes.push_back(0);
    while (notes_bytes.size() % 4) notes_bytes.push_back(0);
    notes_bytes.insert(notes_bytes.end(), n.desc.begin(), n.desc.end());
    while (notes_bytes.size() % 4) notes_bytes.push_back(0);
  }
  std::size_t off = sizeof(Ehdr) + nph * sizeof(Phdr);
  const std::size_t notes_off = off;
  off += notes_bytes.size();
  std::vector<std::size_t> seg_off;
  for (const auto& s : segs) {
    off = (off + 15) & ~std::size_t(15);
    seg_off.push_back(off);
    off += s.data.size();
  }
  Bytes b(off, 0);
  Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = cls;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = machine;
  eh.e_version = EV_CURRENT;
  eh.e_entry = static_cast<decltype(eh.e_entry)>(entry);
  eh.e_phoff = sizeof(Ehdr);
  eh.e_ehsize = sizeof(Ehdr);
  eh.e_phentsize = sizeof(Phdr);
  eh.e_phnum = static_cast<std::uint16_t>(nph);
  std::memcpy(b.data(), &eh, sizeof(eh));
  std::size_t ph_at = sizeof(Ehdr);
  for (std::size_t i = 0; i < segs.size(); ++i) {
    Phdr ph{};
    ph.p_type = PT_LOAD;
    ph.p_offset = static_cast<decltype(ph.p_offset)>(seg_off[i]);
    ph.p_vaddr = static_cast<decltype(ph.p_vaddr)>(segs[i].vaddr);
    ph.p_paddr = static_cast<decltype(ph.p_paddr)>(segs[i].paddr);
    ph.p_filesz = static_cast<decltype(ph.p_filesz)>(segs[i].data.size());
    ph.p_memsz =
        static_cast<decltype(ph.p_memsz)>(segs[i].memsz ? segs[i].memsz : segs[i].data.size());
    ph.p_flags = PF_R | PF_X;
    ph.p_align = 16;
    std::memcpy(b.data() + ph_at, &ph, sizeof(ph));
    ph_at += sizeof(Phdr);
    std::memcpy(b.data() + seg_off[i], segs[i].data.data(), segs[i].data.size());
  }
  if (!notes.empty()) {
    Phdr ph{};
    ph.p_type = PT_NOTE;
    ph.p_offset = static_cast<decltype(ph.p_offset)>(notes_off);
    ph.p_filesz = static_cast<decltype(ph.p_filesz)>(notes_bytes.size());
    ph.p_align = 4;
    std::memcpy(b.data() + ph_at, &ph, sizeof(ph));
    std::memcpy(b.data() + notes_off, notes_bytes.data(), notes_bytes.size());
  }
  return b;
}

inline Bytes elf32(std::uint64_t entry, const std::vector<Segment>& segs,
                   const std::vector<Note>& notes = {}, std::uint16_t machine = EM_386) {
  return elf_image<Elf32_Ehdr, Elf32_Phdr, Elf32_Nhdr>(ELFCLASS32, machine, entry, segs, notes);
}
inline Bytes elf64(std::uint64_t entry, const std::vector<Segment>& segs,
                   const std::vector<Note>& notes = {}, std::uint16_t machine = EM_X86_64) {
  return elf_image<Elf64_Ehdr, Elf64_Phdr, Elf64_Nhdr>(ELFCLASS64, machine, entry, segs, notes);
}

inline Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}
inline void write_file(const std::string& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  // Safe: bytes as chars for the stream.
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// x86 machine code for the raw test kernels (32-bit protected mode).
namespace code {
inline Bytes out_f4(std::uint8_t v) { return {0xB0, v, 0xE6, 0xF4}; }  // mov al, v; out 0xF4, al
inline Bytes serial_char(char c) {  // mov dx, 0x3F8; mov al, c; out dx, al
  return {0x66, 0xBA, 0xF8, 0x03, 0xB0, static_cast<std::uint8_t>(c), 0xEE};
}
inline const Bytes kSpin = {0xEB, 0xFE};  // jmp $
inline const Bytes kUd2 = {0x0F, 0x0B};   // #UD with no IDT: a triple fault
inline const Bytes kHlt = {0xFA, 0xF4};   // cli; hlt
inline Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes b;
  for (const auto& p : parts) b.insert(b.end(), p.begin(), p.end());
  return b;
}
}  // namespace code

}  // namespace unifn::test
