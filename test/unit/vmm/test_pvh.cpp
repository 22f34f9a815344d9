// PVH: the Xen entry note in ELF32 and ELF64, hvm_start_info v1 layout and contents, loader checks.
#include <catch2/catch.hpp>
#include <cstddef>

#include "test/kernels/kernel_images.h"
#include "vmm/loader/pvh.h"
#include "vmm/x86/protected_mode.h"

using namespace unifn::vmm;
using namespace unifn::test;

TEST_CASE("hvm_start_info and its memory map entries have Xen's layout", "[pvh]") {
  CHECK(sizeof(HvmStartInfo) == 56);
  CHECK(offsetof(HvmStartInfo, magic) == 0);
  CHECK(offsetof(HvmStartInfo, version) == 4);
  CHECK(offsetof(HvmStartInfo, flags) == 8);
  CHECK(offsetof(HvmStartInfo, nr_modules) == 12);
  CHECK(offsetof(HvmStartInfo, modlist_paddr) == 16);
  CHECK(offsetof(HvmStartInfo, cmdline_paddr) == 24);
  CHECK(offsetof(HvmStartInfo, rsdp_paddr) == 32);
  CHECK(offsetof(HvmStartInfo, memmap_paddr) == 40);
  CHECK(offsetof(HvmStartInfo, memmap_entries) == 48);
  CHECK(sizeof(HvmMemmapEntry) == 24);
  CHECK(offsetof(HvmMemmapEntry, size) == 8);
  CHECK(offsetof(HvmMemmapEntry, type) == 16);
}

TEST_CASE("the start info carries the magic, version 1, the command line and a RAM map", "[pvh]") {
  GuestMemory mem(32ull << 20);
  const std::uint32_t at = write_hvm_start_info(mem, "console=ttyS0");
  CHECK(at == kernel_layout::kBootInfo);
  auto si = mem.read_obj<HvmStartInfo>(GuestAddr(at));
  CHECK(si.magic == 0x336ec578);
  CHECK(si.version == 1);
  CHECK(si.nr_modules == 0);
  CHECK(si.modlist_paddr == 0);
  CHECK(si.rsdp_paddr == 0);
  CHECK(mem.read_cstr(GuestAddr(si.cmdline_paddr), 4096) == "console=ttyS0");
  REQUIRE(si.memmap_entries == 3);
  std::uint64_t top = 0;
  for (std::uint32_t i = 0; i < si.memmap_entries; ++i) {
    auto e = mem.read_obj<HvmMemmapEntry>(GuestAddr(si.memmap_paddr + i * sizeof(HvmMemmapEntry)));
    CHECK(e.reserved == 0);
    CHECK((e.type == 1 || e.type == 2));
    if (e.type == 1) top = std::max(top, e.addr + e.size);
  }
  CHECK(top == 32ull << 20);
}

TEST_CASE("the PVH note is found in ELF64 (8-byte value) and ELF32 (4-byte value)", "[pvh]") {
  const Bytes code{0xF4};
  auto e64 = parse_kernel_elf(
      elf64(0xFFFFFFFF81000000ull, {Segment{0x1000000, 0xFFFFFFFF81000000ull, code}},
            {Note{"Xen", 18, pvh_note_desc64(0x1000000)}}),
      "vmlinux");
  CHECK(e64.elf_class == 2);
  REQUIRE(e64.pvh_entry);
  CHECK(*e64.pvh_entry == 0x1000000);
  CHECK_FALSE(e64.unifn_note);

  auto e32 = parse_kernel_elf(
      elf32(0x100000, {Segment{0x100000, 0x100000, code}},
            {Note{"GNU", 3, Bytes(20, 1)}, Note{"Xen", 18, pvh_note_desc32(0x100000)}}),
      "k32");
  CHECK(e32.elf_class == 1);
  REQUIRE(e32.pvh_entry);
  CHECK(*e32.pvh_entry == 0x100000);

  auto other = parse_kernel_elf(
      elf64(0x100000, {Segment{0x100000, 0x100000, code}},
            {Note{"Xen", 17, pvh_note_desc64(0x100000)}, Note{"Xe", 18, pvh_note_desc64(1)}}),
      "other");
  CHECK_FALSE(other.pvh_entry);
}

TEST_CASE("a malformed note list stops the scan without reading past the segment", "[pvh]") {
  Bytes b = elf64(0x100000, {Segment{0x100000, 0x100000, {0xF4}}},
                  {Note{"Xen", 18, pvh_note_desc64(0x100000)}});
  // The note header sits right after the two program headers: make n_descsz huge.
  put32(b, sizeof(Elf64_Ehdr) + 2 * sizeof(Elf64_Phdr) + 4, 0xFFFFFFF0u);
  auto elf = parse_kernel_elf(b, "bad-note");
  CHECK_FALSE(elf.pvh_entry);
}

TEST_CASE("load_pvh loads the segments and refuses entries it cannot use", "[pvh]") {
  GuestMemory mem(16ull << 20);
  const Bytes code{0x90, 0xF4};
  SECTION("a good image") {
    auto img = elf64(0x100000, {Segment{0x200000, 0x200000, code, 0x3000}},
                     {Note{"Xen", 18, pvh_note_desc64(0x200001)}});
    auto boot = load_pvh(parse_kernel_elf(img, "k"), img, "k", "quiet", mem);
    CHECK(boot.entry == 0x200001);
    CHECK(boot.start_info_gpa == kernel_layout::kBootInfo);
    CHECK(mem.read_obj<std::uint8_t>(GuestAddr(0x200001)) == 0xF4);
    CHECK(mem.read_cstr(GuestAddr(kernel_layout::kCmdline), 64) == "quiet");
  }
  SECTION("no note") {
    auto img = elf64(0x100000, {Segment{0x100000, 0x100000, code}});
    CHECK_THROWS_WITH(load_pvh(parse_kernel_elf(img, "k"), img, "k", "", mem),
                      Catch::Contains("no PVH entry note"));
  }
  SECTION("an entry above 4 GiB") {
    auto img = elf64(0x100000, {Segment{0x100000, 0x100000, code}},
                     {Note{"Xen", 18, pvh_note_desc64(0x100000000ull)}});
    CHECK_THROWS_WITH(load_pvh(parse_kernel_elf(img, "k"), img, "k", "", mem),
                      Catch::Contains("above 4 GiB"));
  }
  SECTION("an entry outside the segments") {
    auto img = elf64(0x100000, {Segment{0x100000, 0x100000, code}},
                     {Note{"Xen", 18, pvh_note_desc64(0x300000)}});
    CHECK_THROWS_WITH(load_pvh(parse_kernel_elf(img, "k"), img, "k", "", mem),
                      Catch::Contains("in no loadable segment"));
  }
}

TEST_CASE("the built PVH test kernel carries the note at its entry", "[pvh]") {
  const Bytes img = read_file(UNIFN_BUILD_DIR "/test/kernels/pvh.elf");
  REQUIRE(!img.empty());
  auto elf = parse_kernel_elf(img, "pvh.elf");
  CHECK(elf.elf_class == 2);
  REQUIRE(elf.pvh_entry);
  CHECK(*elf.pvh_entry >= 0x100000);
}
