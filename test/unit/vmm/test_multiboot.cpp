// Multiboot1: header search and checks, the ELF kernel parser, loading, and the boot info layout.
#include <catch2/catch.hpp>
#include <cstddef>

#include "vmm/kernel_boot.h"
#include "test/kernels/kernel_images.h"
#include "vmm/loader/multiboot.h"
#include "vmm/x86/protected_mode.h"

using namespace unifn::vmm;
using namespace unifn::test;

namespace {

Bytes with_header_at(std::size_t off, const Bytes& header, std::size_t size = 0) {
  Bytes b(std::max(size, off + header.size()), 0xCC);
  std::copy(header.begin(), header.end(), b.begin() + static_cast<std::ptrdiff_t>(off));
  return b;
}

}  // namespace

TEST_CASE("the multiboot header is found 4-byte aligned in the first 8 KiB", "[multiboot]") {
  const Bytes h = multiboot_header(0x3);
  auto found = find_multiboot_header(with_header_at(0x40, h));
  REQUIRE(found);
  CHECK(found->file_offset == 0x40);
  CHECK(found->flags == 0x3);
  CHECK(found->checksum_ok());

  CHECK(find_multiboot_header(with_header_at(8192 - 12, h))->file_offset == 8192 - 12);
  CHECK_FALSE(find_multiboot_header(with_header_at(8192, h)));  // past the search window
  CHECK_FALSE(find_multiboot_header(with_header_at(0x42, h)));  // not aligned
  CHECK_FALSE(find_multiboot_header(Bytes{0x02, 0xB0, 0xAD}));  // shorter than a header
}

TEST_CASE("a header with a wrong checksum is reported, but a later good one wins", "[multiboot]") {
  const Bytes bad = multiboot_header(0x3, 1);
  auto only_bad = find_multiboot_header(with_header_at(0x10, bad));
  REQUIRE(only_bad);
  CHECK_FALSE(only_bad->checksum_ok());
  CHECK_THROWS_WITH(check_multiboot_header(*only_bad, with_header_at(0x10, bad), "k.bin"),
                    Catch::StartsWith("k.bin: ") && Catch::Contains("wrong checksum"));

  Bytes both = with_header_at(0x10, bad, 0x100);
  const Bytes good = multiboot_header(0x2);
  std::copy(good.begin(), good.end(), both.begin() + 0x80);
  auto found = find_multiboot_header(both);
  REQUIRE(found);
  CHECK(found->file_offset == 0x80);
  CHECK(found->checksum_ok());
}

TEST_CASE("required flags unifn cannot honour are refused, optional and video bits are not",
          "[multiboot]") {
  for (std::uint32_t flags : {0x0u, 0x1u, 0x2u, 0x4u, 0x7u, 0x00020003u, 0x80000000u}) {
    const Bytes img = with_header_at(0, multiboot_header(flags), 64);
    auto h = find_multiboot_header(img);
    REQUIRE(h);
    CHECK_NOTHROW(check_multiboot_header(*h, img, "k"));
  }
  for (std::uint32_t flags : {0x8u, 0x10u, 0x8000u}) {
    const Bytes img = with_header_at(0, multiboot_header(flags), 64);
    auto h = find_multiboot_header(img);
    REQUIRE(h);
    CHECK_THROWS_WITH(check_multiboot_header(*h, img, "k"),
                      Catch::Contains("requires features unifn cannot provide"));
  }
}

TEST_CASE("the a.out address fields are read and cut-off headers refused", "[multiboot]") {
  MbFields f{0x100040, 0x100000, 0x100200, 0x100400, 0x100050};
  const Bytes img = with_header_at(0x40, multiboot_header(0x10000, 0, f), 0x200);
  auto h = find_multiboot_header(img);
  REQUIRE(h);
  CHECK(h->header_addr == 0x100040);
  CHECK(h->load_addr == 0x100000);
  CHECK(h->load_end_addr == 0x100200);
  CHECK(h->bss_end_addr == 0x100400);
  CHECK(h->entry_addr == 0x100050);

  const Bytes cut = with_header_at(0, multiboot_header(0x10000, 0, f));
  Bytes shortened(cut.begin(), cut.begin() + 20);
  auto hc = find_multiboot_header(shortened);
  REQUIRE(hc);
  CHECK_THROWS_WITH(check_multiboot_header(*hc, shortened, "k"), Catch::Contains("cut off"));
}

TEST_CASE("multiboot_info and the memory map have the spec's layout", "[multiboot]") {
  CHECK(offsetof(MultibootInfo, mem_lower) == 4);
  CHECK(offsetof(MultibootInfo, mem_upper) == 8);
  CHECK(offsetof(MultibootInfo, cmdline) == 16);
  CHECK(offsetof(MultibootInfo, mods_count) == 20);
  CHECK(offsetof(MultibootInfo, mmap_length) == 44);
  CHECK(offsetof(MultibootInfo, mmap_addr) == 48);
  CHECK(offsetof(MultibootInfo, boot_loader_name) == 64);
  CHECK(offsetof(MultibootInfo, vbe_mode) == 80);
  CHECK(offsetof(MultibootInfo, framebuffer_addr) == 88);
  CHECK(offsetof(MultibootMmapEntry, addr) == 4);
  CHECK(offsetof(MultibootMmapEntry, len) == 12);
  CHECK(offsetof(MultibootMmapEntry, type) == 20);
}

TEST_CASE("the boot info says how much memory there is, the command line and the loader name",
          "[multiboot]") {
  GuestMemory mem(64ull << 20);
  const std::uint32_t at = write_multiboot_info(mem, "kernel.elf quiet");
  CHECK(at == kernel_layout::kBootInfo);
  auto info = mem.read_obj<MultibootInfo>(GuestAddr(at));
  CHECK(info.flags ==
        (mb_info::kMemory | mb_info::kCmdline | mb_info::kMmap | mb_info::kLoaderName));
  CHECK(info.mem_lower == 640);
  CHECK(info.mem_upper == 63 * 1024);
  CHECK(mem.read_cstr(GuestAddr(info.cmdline), 4096) == "kernel.elf quiet");
  CHECK(mem.read_cstr(GuestAddr(info.boot_loader_name), 64) == "unifn");
  REQUIRE(info.mmap_length == 3 * sizeof(MultibootMmapEntry));
  std::uint64_t ram = 0;
  for (std::uint32_t i = 0; i < 3; ++i) {
    auto e = mem.read_obj<MultibootMmapEntry>(
        GuestAddr(info.mmap_addr + i * sizeof(MultibootMmapEntry)));
    CHECK(e.size == 20);
    if (e.type == 1) ram += e.len;
  }
  CHECK(ram == (64ull << 20) - 0x100000 + 0xA0000);

  CHECK_THROWS_WITH(write_multiboot_info(mem, std::string(5000, 'x')),
                    Catch::Contains("longer than the 4095 bytes"));
}

TEST_CASE("a raw a.out-kludge kernel is loaded at its load address with its bss zeroed",
          "[multiboot]") {
  GuestMemory mem(8ull << 20);
  mem.fill(GuestAddr(0x200000), 0xAA, 0x2000);
  const Bytes img = aout_kernel({0x90, 0x90, 0xF4}, 0x200000, 0, 0x100);
  auto boot = load_multiboot(img, "raw.bin", "raw.bin x", mem);
  CHECK(boot.entry == 0x200020);
  CHECK(boot.info_gpa == kernel_layout::kBootInfo);
  CHECK(mem.read_obj<std::uint32_t>(GuestAddr(0x200000)) == 0x1BADB002);
  CHECK(mem.read_obj<std::uint8_t>(GuestAddr(0x200022)) == 0xF4);
  CHECK(mem.read_obj<std::uint8_t>(GuestAddr(0x200023)) == 0);         // bss
  CHECK(mem.read_obj<std::uint8_t>(GuestAddr(0x200023 + 0xFF)) == 0);  // end of bss
  CHECK(mem.read_obj<std::uint8_t>(GuestAddr(0x200023 + 0x100)) == 0xAA);
}

TEST_CASE("bad a.out address fields are refused with a sentence", "[multiboot]") {
  GuestMemory mem(8ull << 20);
  auto refuse = [&](MbFields f, const char* what) {
    const Bytes img = with_header_at(0, multiboot_header(0x10000, 0, f), 0x100);
    CHECK_THROWS_WITH(load_multiboot(img, "k.bin", "", mem),
                      Catch::StartsWith("k.bin: ") && Catch::Contains(what));
  };
  refuse({0x100000, 0x100010, 0, 0, 0x100020}, "above header_addr");
  refuse({0x100100, 0x100000, 0, 0, 0x100110}, "before the start of the file");
  refuse({0x100000, 0x100000, 0x100800, 0, 0x100020}, "runs past the end of the file");
  refuse({0x100000, 0x100000, 0x100080, 0x100040, 0x100020}, "bss_end_addr");
  refuse({0x100000, 0x100000, 0, 0, 0x200000}, "entry_addr 0x200000 is outside the loaded image");
  refuse({0x7F00000, 0x7F00000, 0, 0, 0x7F00020}, "outside the 8 MiB of guest RAM");
  refuse({0x4000, 0x4000, 0, 0, 0x4020}, "overlaps the boot structures");
}

TEST_CASE("ELF kernels: entry translated from virtual to physical, malformed headers refused",
          "[multiboot][elf]") {
  Bytes text = multiboot_header(0x3);
  text.insert(text.end(), {0xF4, 0xF4});
  SECTION("a higher-half kernel enters at the physical address") {
    auto elf = parse_kernel_elf(elf32(0xC010000C, {Segment{0x100000, 0xC0100000, text, 0x1000}}),
                                "hh.elf");
    CHECK(elf.elf_class == 1);
    REQUIRE(elf.segments.size() == 1);
    CHECK(elf.segments[0].mem_size == 0x1000);
    CHECK(kernel_entry_gpa(elf, "hh.elf") == 0x10000C);
    GuestMemory mem(8ull << 20);
    auto boot = load_multiboot(elf32(0xC010000C, {Segment{0x100000, 0xC0100000, text, 0x1000}}),
                               "hh.elf", "", mem);
    CHECK(boot.entry == 0x10000C);
  }
  SECTION("an entry in no segment") {
    auto elf = parse_kernel_elf(elf32(0x500000, {Segment{0x100000, 0x100000, text}}), "e.elf");
    CHECK_THROWS_WITH(kernel_entry_gpa(elf, "e.elf"),
                      Catch::Contains("entry point 0x500000 is in no loadable segment"));
  }
  SECTION("filesz larger than memsz") {
    Bytes b = elf32(0x100000, {Segment{0x100000, 0x100000, text}});
    put32(b, sizeof(Elf32_Ehdr) + offsetof(Elf32_Phdr, p_memsz), 1);
    CHECK_THROWS_WITH(parse_kernel_elf(b, "f.elf"),
                      Catch::Contains("filesz") && Catch::Contains("memsz"));
  }
  SECTION("a program header table past the end") {
    Bytes b = elf32(0x100000, {Segment{0x100000, 0x100000, text}});
    put32(b, offsetof(Elf32_Ehdr, e_phoff), 0x10000);
    CHECK_THROWS_WITH(parse_kernel_elf(b, "p.elf"),
                      Catch::Contains("program header table runs past the end"));
  }
  SECTION("wrong machine, wrong type, no segments") {
    CHECK_THROWS_WITH(
        parse_kernel_elf(elf32(0x100000, {Segment{0x100000, 0x100000, text}}, {}, EM_X86_64),
                         "m.elf"),
        Catch::Contains("wrong machine 62 (x86-64) for a 32-bit ELF (x86 expected)"));
    Bytes b = elf32(0x100000, {Segment{0x100000, 0x100000, text}});
    put16(b, offsetof(Elf32_Ehdr, e_type), ET_DYN);
    CHECK_THROWS_WITH(parse_kernel_elf(b, "t.elf"), Catch::Contains("ET_EXEC expected"));
    CHECK_THROWS_WITH(
        parse_kernel_elf(elf32(0x100000, {}, {Note{"Xen", 18, pvh_note_desc32(1)}}), "n.elf"),
        Catch::Contains("no loadable segment"));
  }
  SECTION("not ELF, or cut short") {
    CHECK_THROWS_WITH(parse_kernel_elf(Bytes{1, 2, 3, 4, 5}, "x"),
                      Catch::Contains("not an ELF file"));
    Bytes b = elf32(0x100000, {Segment{0x100000, 0x100000, text}});
    b.resize(30);
    CHECK_THROWS_WITH(parse_kernel_elf(b, "x"), Catch::Contains("truncated ELF header"));
  }
}

TEST_CASE("is_kernel_image tells kernels from unifn functions and junk", "[multiboot][pvh]") {
  Bytes text = multiboot_header(0x3);
  text.push_back(0xF4);
  CHECK(is_kernel_image(elf32(0x10000C, {Segment{0x100000, 0x100000, text}})));
  CHECK(is_kernel_image(
      elf32(0x100000, {Segment{0x100000, 0x100000, {0xF4}}})));  // refused later, by boot_kernel
  CHECK(is_kernel_image(aout_kernel({0xF4})));
  CHECK(is_kernel_image(
      with_header_at(0x20, multiboot_header(0x3, 7), 64)));  // bad checksum: refused later
  CHECK_FALSE(is_kernel_image(Bytes{'j', 'u', 'n', 'k'}));
  CHECK(is_kernel_image(elf64(0x100000, {Segment{0x100000, 0x100000, {0xF4}}},
                              {Note{"Xen", 18, pvh_note_desc64(0x100000)}})));
  CHECK_FALSE(is_kernel_image(
      elf64(0x100000, {Segment{0x100000, 0x100000, {0xF4}}},
            {Note{"Xen", 18, pvh_note_desc64(0x100000)}, Note{"unifn", 1, pvh_note_desc32(1)}})));
  CHECK_FALSE(is_kernel_image(elf64(0x100000, {Segment{0x100000, 0x100000, {0xF4}}})));
}
