// ELF64 parsing and loading for unifn images (ET_EXEC, x86-64, PT_LOAD at or above 1 MiB, ABI
// note).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vmm/loader/image_error.h"
#include "vmm/memory/guest_memory.h"

namespace unifn::vmm {

struct LoadSegment {
  std::uint64_t file_offset = 0;
  std::uint64_t file_size = 0;
  std::uint64_t gpa = 0;
  std::uint64_t mem_size = 0;
  std::uint32_t flags = 0;  // PF_R, PF_W, PF_X: the sandbox maps the segment with these rights
};

struct ElfImage {
  std::uint64_t entry = 0;
  std::vector<LoadSegment> segments;
  std::vector<std::uint8_t> phdrs;  // the raw program header table, for AT_PHDR
  std::uint16_t phnum = 0;
  std::uint16_t phentsize = 0;
  std::uint64_t end = 0;                   // first byte past the highest segment
  std::optional<std::uint32_t> unifn_abi;  // from the unifn ABI note
  std::optional<std::uint32_t> pvh_entry;  // from XEN_ELFNOTE_PHYS32_ENTRY
};

// Reads the ELF64 headers of `file` (named `name` in errors); throws ImageError with a sentence
// for anything malformed: bad magic, class, machine, type, a table or segment past the end of the
// file, filesz > memsz, overflowing sizes, segments below 1 MiB.
ElfImage parse_elf64(std::span<const std::uint8_t> file, const std::string& name);

// True when the bytes start with the ELF magic.
bool is_elf(std::span<const std::uint8_t> file);
// 1 for ELFCLASS32, 2 for ELFCLASS64, 0 otherwise.
int elf_class(std::span<const std::uint8_t> file);

// Copies every PT_LOAD segment into guest RAM and zeroes its bss; throws ImageError when a
// segment does not fit in RAM.
void load_segments(const ElfImage& image, std::span<const std::uint8_t> file, GuestMemory& mem,
                   const std::string& name);

// Whole file contents; throws ImageError naming the path when it cannot be read or is too large.
std::vector<std::uint8_t> read_image_file(const std::string& path);

}  // namespace unifn::vmm
