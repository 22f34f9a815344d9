// The ELF loader and FunctionImage: the real hello.elf parses; every mutated copy is refused with a
// sentence.
#include <catch2/catch.hpp>

#include <elf.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include <unifn/abi.h>

#include "vmm/guest/function_image.h"
#include "vmm/loader/elf.h"

using namespace unifn::vmm;

namespace {
const std::string kHello = std::string(UNIFN_FUNCTIONS_DIR) + "/hello.elf";

std::vector<std::uint8_t> hello_bytes() {
  std::ifstream f(kHello, std::ios::binary);
  REQUIRE(f);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(f), {});
}

Elf64_Ehdr ehdr(const std::vector<std::uint8_t>& b) {
  Elf64_Ehdr h;
  std::memcpy(&h, b.data(), sizeof h);
  return h;
}
void set_ehdr(std::vector<std::uint8_t>& b, const Elf64_Ehdr& h) {
  std::memcpy(b.data(), &h, sizeof h);
}

Elf64_Phdr phdr(const std::vector<std::uint8_t>& b, unsigned i) {
  Elf64_Phdr p;
  std::memcpy(&p, b.data() + ehdr(b).e_phoff + i * sizeof(Elf64_Phdr), sizeof p);
  return p;
}
void set_phdr(std::vector<std::uint8_t>& b, unsigned i, const Elf64_Phdr& p) {
  std::memcpy(b.data() + ehdr(b).e_phoff + i * sizeof(Elf64_Phdr), &p, sizeof p);
}

// Index of the n-th program header of `type`.
unsigned find_phdr(const std::vector<std::uint8_t>& b, std::uint32_t type, unsigned n = 0) {
  for (unsigned i = 0; i < ehdr(b).e_phnum; ++i)
    if (phdr(b, i).p_type == type && n-- == 0) return i;
  FAIL("no program header of type " << type);
  return 0;
}

// The parse error's message for bytes, or "" when they parse.
std::string parse_error(const std::vector<std::uint8_t>& b) {
  try {
    parse_elf64(b, "/images/x.elf");
  } catch (const ImageError& e) {
    return e.what();
  }
  return "";
}

std::string image_error(std::vector<std::uint8_t> b) {
  try {
    FunctionImage::from_bytes("/images/x.elf", std::move(b));
  } catch (const ImageError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE(
    "parse_elf64 reads the real hello.elf: entry, segments at or above 1 MiB, the unifn ABI note") {
  auto b = hello_bytes();
  auto img = parse_elf64(b, kHello);
  CHECK(img.entry == ehdr(b).e_entry);
  CHECK(img.entry >= UNIFN_IMAGE_MIN_GPA);
  REQUIRE(img.segments.size() >= 2);
  bool entry_in_a_segment = false;
  for (const auto& s : img.segments) {
    CHECK(s.gpa >= UNIFN_IMAGE_MIN_GPA);
    CHECK(s.file_size <= s.mem_size);
    CHECK(s.file_offset + s.file_size <= b.size());
    CHECK(s.gpa + s.mem_size <= img.end);
    if (img.entry >= s.gpa && img.entry < s.gpa + s.mem_size) entry_in_a_segment = true;
  }
  CHECK(entry_in_a_segment);
  REQUIRE(img.unifn_abi.has_value());
  CHECK(*img.unifn_abi == UNIFN_ABI_VERSION);
  CHECK_FALSE(img.pvh_entry.has_value());
  CHECK(img.phnum == ehdr(b).e_phnum);
  CHECK(img.phentsize == sizeof(Elf64_Phdr));
  CHECK(img.phdrs.size() == img.phnum * sizeof(Elf64_Phdr));
  CHECK(is_elf(b));
  CHECK(elf_class(b) == 2);

  auto fi = FunctionImage::from_bytes(kHello, b);
  CHECK(fi->path == kHello);
  CHECK(fi->elf.entry == img.entry);
  CHECK(FunctionImage::load(kHello)->bytes == b);
}

TEST_CASE("parse_elf64 refuses mutated copies of hello.elf, naming the file and the problem") {
  auto b = hello_bytes();
  const unsigned load0 = find_phdr(b, PT_LOAD, 0), load1 = find_phdr(b, PT_LOAD, 1);

  SECTION("bad magic") {
    b[1] = 'X';
    CHECK_THAT(parse_error(b),
               Catch::Contains("/images/x.elf") && Catch::Contains("not an ELF file (bad magic)"));
    CHECK_FALSE(is_elf(b));
  }
  SECTION("ELFCLASS32") {
    b[EI_CLASS] = ELFCLASS32;
    CHECK_THAT(parse_error(b), Catch::Contains("/images/x.elf") && Catch::Contains("ELFCLASS64"));
    CHECK(elf_class(b) == 1);
  }
  SECTION("big-endian") {
    b[EI_DATA] = ELFDATA2MSB;
    CHECK_THAT(parse_error(b), Catch::Contains("little-endian"));
  }
  SECTION("wrong e_machine") {
    auto h = ehdr(b);
    h.e_machine = EM_AARCH64;
    set_ehdr(b, h);
    CHECK_THAT(parse_error(b), Catch::Contains("/images/x.elf") &&
                                   Catch::Contains("wrong machine 183") &&
                                   Catch::Contains("x86-64 expected"));
  }
  SECTION("ET_DYN (a PIE)") {
    auto h = ehdr(b);
    h.e_type = ET_DYN;
    set_ehdr(b, h);
    CHECK_THAT(parse_error(b), Catch::Contains("ET_EXEC"));
  }
  SECTION("ET_REL (an object file)") {
    auto h = ehdr(b);
    h.e_type = ET_REL;
    set_ehdr(b, h);
    CHECK_THAT(parse_error(b), Catch::Contains("ET_EXEC"));
  }
  SECTION("truncated ELF header") {
    b.resize(40);
    CHECK_THAT(parse_error(b),
               Catch::Contains("/images/x.elf") && Catch::Contains("truncated ELF header"));
    b.resize(3);  // shorter than the magic
    CHECK_THAT(parse_error(b), Catch::Contains("bad magic"));
    b.clear();
    CHECK_THAT(parse_error(b), Catch::Contains("bad magic"));
  }
  SECTION("truncated program header table") {
    b.resize(ehdr(b).e_phoff + 2 * sizeof(Elf64_Phdr) + 10);
    CHECK_THAT(parse_error(b),
               Catch::Contains("program header table runs past the end of the file"));
  }
  SECTION("program header table offset that overflows") {
    auto h = ehdr(b);
    h.e_phoff = std::numeric_limits<std::uint64_t>::max() - 8;
    set_ehdr(b, h);
    CHECK_THAT(parse_error(b),
               Catch::Contains("program header table runs past the end of the file"));
  }
  SECTION("no program headers, or too many") {
    auto h = ehdr(b);
    h.e_phnum = 0;
    set_ehdr(b, h);
    CHECK_THAT(parse_error(b), Catch::Contains("0 program headers"));
    h.e_phnum = 0xFFFF;
    set_ehdr(b, h);
    CHECK_THAT(parse_error(b), Catch::Contains("65535 program headers"));
  }
  SECTION("wrong program header size") {
    auto h = ehdr(b);
    h.e_phentsize = 32;
    set_ehdr(b, h);
    CHECK_THAT(parse_error(b), Catch::Contains("program header size 32"));
  }
  SECTION("segment whose offset + filesz runs past the end of the file") {
    auto p = phdr(b, load1);
    p.p_offset = b.size() - 16;
    set_phdr(b, load1, p);
    CHECK_THAT(parse_error(b), Catch::Contains("/images/x.elf") &&
                                   Catch::Contains("segment " + std::to_string(load1)) &&
                                   Catch::Contains("runs past the end of the file"));
  }
  SECTION("segment whose offset + filesz wraps past 2^64") {
    auto p = phdr(b, load1);
    p.p_offset = std::numeric_limits<std::uint64_t>::max() - 0x10;
    set_phdr(b, load1, p);
    CHECK_THAT(parse_error(b), Catch::Contains("runs past the end of the file"));
  }
  SECTION("the file cut inside a segment") {
    auto p = phdr(b, load1);
    b.resize(p.p_offset + p.p_filesz / 2);
    CHECK_THAT(parse_error(b), Catch::Contains("runs past the end of the file (truncated?)"));
  }
  SECTION("filesz > memsz") {
    auto p = phdr(b, load1);
    p.p_memsz = p.p_filesz - 1;
    set_phdr(b, load1, p);
    CHECK_THAT(parse_error(b), Catch::Contains("/images/x.elf") && Catch::Contains("filesz") &&
                                   Catch::Contains("> memsz"));
  }
  SECTION("a segment below 1 MiB") {
    auto p = phdr(b, load0);
    p.p_vaddr = p.p_paddr = 0x80000;
    set_phdr(b, load0, p);
    CHECK_THAT(parse_error(b),
               Catch::Contains("/images/x.elf") && Catch::Contains("at 0x80000 is below 1 MiB"));
  }
  SECTION("a segment at guest-physical 0 through its p_vaddr") {
    auto p = phdr(b, load0);
    p.p_vaddr = p.p_paddr = 0;
    set_phdr(b, load0, p);
    CHECK_THAT(parse_error(b), Catch::Contains("below 1 MiB"));
  }
  SECTION("a segment whose vaddr + memsz overflows") {
    auto p = phdr(b, load0);
    p.p_vaddr = p.p_paddr = 0xFFFFFFFFFFFFF000ull;
    p.p_memsz = 0x2000;
    set_phdr(b, load0, p);
    CHECK_THAT(parse_error(b),
               Catch::Contains("/images/x.elf") && Catch::Contains("beyond the largest guest RAM"));
  }
  SECTION("a segment with memsz near 2^64") {
    auto p = phdr(b, load0);
    p.p_memsz = std::numeric_limits<std::uint64_t>::max() - 0xFFF;
    set_phdr(b, load0, p);
    CHECK_THAT(parse_error(b), Catch::Contains("beyond the largest guest RAM"));
  }
  SECTION("a segment that ends just past the largest guest RAM") {
    auto p = phdr(b, load0);
    p.p_vaddr = p.p_paddr = UNIFN_RAM_MAX_BYTES - 0x1000;
    p.p_memsz = 0x1001;
    set_phdr(b, load0, p);
    CHECK_THAT(parse_error(b), Catch::Contains("beyond the largest guest RAM"));
  }
  SECTION("an entry point in no loadable segment") {
    auto h = ehdr(b);
    h.e_entry = 0x5000000;
    set_ehdr(b, h);
    CHECK_THAT(parse_error(b), Catch::Contains("entry point 0x5000000 is in no loadable segment"));
  }
  SECTION("no loadable segment") {
    for (unsigned i = 0; i < ehdr(b).e_phnum; ++i) {
      auto p = phdr(b, i);
      if (p.p_type == PT_LOAD) p.p_type = PT_NULL;
      set_phdr(b, i, p);
    }
    CHECK_THAT(parse_error(b), Catch::Contains("no loadable segment"));
  }
  SECTION("a note segment past the end of the file") {
    unsigned note = find_phdr(b, PT_NOTE);
    auto p = phdr(b, note);
    p.p_offset = b.size() - 4;
    set_phdr(b, note, p);
    CHECK_THAT(parse_error(b),
               Catch::Contains("note segment") && Catch::Contains("past the end of the file"));
  }
  SECTION("a malformed note is skipped, not trusted") {
    unsigned note = find_phdr(b, PT_NOTE);
    auto p = phdr(b, note);
    std::uint32_t huge = 0xFFFFFFF0u;
    std::memcpy(b.data() + p.p_offset, &huge, 4);  // n_namesz
    auto img = parse_elf64(b, "/images/x.elf");
    CHECK_FALSE(img.unifn_abi.has_value());
  }
}

TEST_CASE("load_segments copies each segment, zeroes its bss, and refuses one outside RAM") {
  auto b = hello_bytes();
  auto img = parse_elf64(b, kHello);
  GuestMemory mem(16 << 20);
  mem.fill(GuestAddr(img.segments.back().gpa), 0xCC, img.segments.back().mem_size);
  load_segments(img, b, mem, kHello);
  for (const auto& s : img.segments) {
    std::vector<std::uint8_t> got(s.file_size);
    mem.read(GuestAddr(s.gpa), got);
    CHECK(
        std::equal(got.begin(), got.end(), b.begin() + static_cast<std::ptrdiff_t>(s.file_offset)));
    if (s.mem_size > s.file_size) {
      CHECK(mem.read_obj<std::uint8_t>(GuestAddr(s.gpa + s.file_size)) == 0);
      CHECK(mem.read_obj<std::uint8_t>(GuestAddr(s.gpa + s.mem_size - 1)) == 0);
    }
  }
  GuestMemory tiny(1 << 20);  // the image starts at 1 MiB: nothing fits
  try {
    load_segments(img, b, tiny, kHello);
    FAIL("no exception");
  } catch (const ImageError& e) {
    CHECK_THAT(std::string(e.what()),
               Catch::Contains(kHello) && Catch::Contains("does not fit in 1 MiB of guest RAM"));
  }
}

TEST_CASE("read_image_file names the path it cannot read") {
  try {
    read_image_file("/nonexistent/dir/f.elf");
    FAIL("no exception");
  } catch (const ImageError& e) {
    CHECK_THAT(std::string(e.what()),
               Catch::Contains("/nonexistent/dir/f.elf") && Catch::Contains("cannot open"));
  }
}

TEST_CASE("FunctionImage refuses an ELF64 without the unifn note") {
  auto b = hello_bytes();
  SECTION("no PT_NOTE at all") {
    unsigned note = find_phdr(b, PT_NOTE);
    auto p = phdr(b, note);
    p.p_type = PT_NULL;
    set_phdr(b, note, p);
  }
  SECTION("a note of another owner") {
    auto p = phdr(b, find_phdr(b, PT_NOTE));
    REQUIRE(std::memcmp(b.data() + p.p_offset + 12, "unifn", 6) == 0);
    b[p.p_offset + 12 + 4] = 'x';  // "unifx"
  }
  SECTION("a unifn note of another type") {
    auto p = phdr(b, find_phdr(b, PT_NOTE));
    std::uint32_t type = 7;
    std::memcpy(b.data() + p.p_offset + 8, &type, 4);
  }
  CHECK(parse_error(b).empty());  // a fine ELF64 ...
  CHECK_THAT(image_error(b),
             Catch::Contains("/images/x.elf") && Catch::Contains("not a unifn function image") &&
                 Catch::Contains("unifn_add_function"));  // ... but not a unifn function
}

TEST_CASE("FunctionImage refuses an image built for another ABI version") {
  auto b = hello_bytes();
  auto p = phdr(b, find_phdr(b, PT_NOTE));
  const std::uint64_t desc = p.p_offset + 12 + 8;  // header, "unifn\0" padded to 8
  std::uint32_t version;
  std::memcpy(&version, b.data() + desc, 4);
  REQUIRE(version == UNIFN_ABI_VERSION);
  version = UNIFN_ABI_VERSION + 1;
  std::memcpy(b.data() + desc, &version, 4);
  CHECK_THAT(
      image_error(b),
      Catch::Contains("/images/x.elf") &&
          Catch::Contains("built for unifn ABI version " + std::to_string(UNIFN_ABI_VERSION + 1)) &&
          Catch::Contains("speaks version " + std::to_string(UNIFN_ABI_VERSION)));
}

TEST_CASE("FunctionImage refuses a 32-bit ELF and bytes that are no ELF") {
  auto b = hello_bytes();
  b[EI_CLASS] = ELFCLASS32;
  CHECK_THAT(image_error(b), Catch::Contains("/images/x.elf") && Catch::Contains("32-bit ELF") &&
                                 Catch::Contains("multiboot"));
  std::string text = "#!/bin/sh\necho hi\n";
  CHECK_THAT(image_error(std::vector<std::uint8_t>(text.begin(), text.end())),
             Catch::Contains("/images/x.elf") && Catch::Contains("not an ELF file"));
}
