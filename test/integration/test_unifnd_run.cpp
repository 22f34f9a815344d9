// `unifnd run` as a user runs it: examples answer byte for byte, misbehaving guests and wrong
// images give one clear line.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "test/integration/helpers.h"

using namespace unifn::itest;
using namespace std::chrono_literals;

namespace {
// The line unifnd writes about the image (its own lines start "unifnd run: ").
std::string verdict(const Proc& p) {
  auto at = p.err.rfind("unifnd run: ");
  return at == std::string::npos ? "" : p.err.substr(at);
}
}  // namespace

TEST_CASE("unifnd run: hello greets, exactly") {
  auto p = unifnd_run(example("hello"));
  CHECK(p.status == 0);
  CHECK(p.out == "Hello, world!\n");
  CHECK(p.err.empty());
  TempFile who("who", "unifn");
  p = unifnd_run(example("hello"), {"--input", who.path});
  CHECK(p.status == 0);
  CHECK(p.out == "Hello, unifn!\n");
}

TEST_CASE("unifnd run: echo returns every byte value, and a 1 MiB body, unchanged") {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  all += all;  // 512 bytes, NULs and 0xFF included
  TempFile bin("all-bytes", all);
  auto p = unifnd_run(example("echo"), {"--input", bin.path});
  CHECK(p.status == 0);
  CHECK(p.out.size() == all.size());
  CHECK(p.out == all);

  std::string big(1 << 20, '\0');
  std::mt19937 rng(42);
  std::generate(big.begin(), big.end(), [&] { return static_cast<char>(rng() & 0xFF); });
  TempFile mib("one-mib", big);
  p = unifnd_run(example("echo"), {"--input", mib.path});
  CHECK(p.status == 0);
  CHECK(p.out.size() == big.size());
  CHECK(p.out == big);

  TempFile empty("empty", "");
  p = unifnd_run(example("echo"), {"--input", empty.path});
  CHECK(p.status == 0);
  CHECK(p.out.empty());
}

TEST_CASE("unifnd run: an echo body larger than the guest's buffer is refused, not truncated") {
  TempFile big("nine-mib", std::string(9 << 20, 'e'));
  auto p = unifnd_run(example("echo"), {"--input", big.path, "--memory", "32"});
  CHECK(p.status == 1);
  CHECK(p.out.empty());
  CHECK_THAT(verdict(p), Catch::Contains("9437184 bytes is larger than the function's buffer"));
}

TEST_CASE("unifnd run: wordfreq counts a known text exactly") {
  TempFile text("text", "The cat, the CAT and the dog!\nDog? 42 cats...\tthe end");
  auto p = unifnd_run(example("wordfreq"), {"--input", text.path});
  CHECK(p.status == 0);
  CHECK(p.out == "7 distinct words\n4 the\n2 cat\n2 dog\n1 42\n1 and\n1 cats\n1 end\n");

  // More than 20 distinct words: the 20 most frequent, ties in byte order.
  std::string many = "zeta zeta zeta alpha alpha";
  for (int i = 1; i <= 25; ++i) many += " w" + std::string(i < 10 ? "0" : "") + std::to_string(i);
  TempFile words("many", many);
  p = unifnd_run(example("wordfreq"), {"--input", words.path});
  std::string expected = "27 distinct words\n3 zeta\n2 alpha\n";
  for (int i = 1; i <= 18; ++i)
    expected += "1 w" + std::string(i < 10 ? "0" : "") + std::to_string(i) + "\n";
  CHECK(p.status == 0);
  CHECK(p.out == expected);

  TempFile empty("no-words", "  ,.;  ");
  p = unifnd_run(example("wordfreq"), {"--input", empty.path});
  CHECK(p.out == "0 distinct words\n");
}

TEST_CASE("unifnd run: random prints 32 hex digits and a newline, new ones each run") {
  auto a = unifnd_run(example("random")), b = unifnd_run(example("random"));
  for (const auto* p : {&a, &b}) {
    CHECK(p->status == 0);
    REQUIRE(p->out.size() == 33);
    CHECK(p->out.back() == '\n');
    CHECK(p->out.find_first_not_of("0123456789abcdef") == 32);
  }
  CHECK(a.out != b.out);
}

TEST_CASE("unifnd run: counter answers 1") {
  auto p = unifnd_run(example("counter"));
  CHECK(p.status == 0);
  CHECK(p.out == "1\n");
}

namespace {
struct Bad {
  const char* guest;
  const char* body;
  int status;
  std::vector<std::string> says;  // unifnd's line contains each
};

void check_bad(const Bad& c) {
  INFO("guest " << c.guest << " with input '" << c.body << "'");
  TempFile in(std::string(c.guest) + "-input", c.body);
  auto p = unifnd_run(guest(c.guest), {"--input", in.path, "--timeout-ms", "300"}, 10s);
  INFO("stderr: " << p.err);
  CHECK_FALSE(p.timed_out);
  CHECK(p.status == c.status);
  CHECK(p.out.empty());
  const auto line = verdict(p);
  CHECK_THAT(line, Catch::StartsWith("unifnd run: " + guest(c.guest) + ": "));
  for (const auto& s : c.says) CHECK_THAT(line, Catch::Contains(s));
}
}  // namespace

TEST_CASE("unifnd run: each misbehaving guest gives its clear error and a non-zero exit code") {
  check_bad({"null_read", "", 1, {"page fault", "address 0x0"}});
  check_bad({"divide_zero", "", 1, {"divide error"}});
  check_bad({"invalid_opcode", "", 1, {"invalid opcode"}});
  check_bad({"spin_forever", "", 124, {"timeout", "deadline"}});
  check_bad({"hc_outside_ram", "arg", 1, {"outside guest RAM"}});
  check_bad({"hc_outside_ram", "data", 1, {"console buffer", "outside guest RAM"}});
  check_bad({"respond_overflow", "", 1, {"response body", "outside guest RAM"}});
  check_bad({"abort_reason", "", 1, {"aborted: the model file is missing"}});
  check_bad({"exit_three", "", 1, {"exited with status 3"}});
  check_bad({"stack_smash", "", 1, {"guest exception"}});
  check_bad({"init_fault", "", 1, {"did not initialise", "page fault"}});
  check_bad({"init_loop", "", 124, {"did not initialise", "deadline"}});
  check_bad({"init_abort", "", 1, {"did not initialise", "aborted: no model configured"}});
  check_bad({"init_hc_outside_ram", "", 1, {"did not initialise", "outside guest RAM"}});
}

TEST_CASE("unifnd run: an unknown hypercall number is named as such") {
  check_bad({"unknown_hypercall", "", 1, {"unknown hypercall 6"}});
}

TEST_CASE("unifnd run: the guest's own output comes before the error, on stderr") {
  TempFile in("none", "");
  auto p = unifnd_run(guest("null_read"), {"--input", in.path});
  CHECK_THAT(p.err, Catch::StartsWith("reading address 0\nunifnd run: "));
  p = unifnd_run(guest("exit_three"), {"--input", in.path});
  CHECK_THAT(p.err, Catch::StartsWith("leaving with status 3\nunifnd run: "));
}

TEST_CASE(
    "unifnd run: an unimplemented system call is logged once and the function still answers") {
  auto p = unifnd_run(guest("unknown_syscall"));
  CHECK(p.status == 0);
  CHECK(p.out == "fork: -1 errno 38\nfork: -1 errno 38\n");
  CHECK(p.err == "[unifn] system call 57 is not implemented (answered ENOSYS)\n");
}

namespace {
void check_refused(const std::string& path, std::vector<std::string> args,
                   const std::vector<std::string>& says) {
  INFO("image " << path);
  auto p = unifnd_run(path, std::move(args), 10s);
  INFO("stderr: " << p.err);
  CHECK(p.status == 1);
  CHECK(p.out.empty());
  CHECK_THAT(p.err, Catch::StartsWith("unifnd run: " + path + ": "));
  CHECK(std::count(p.err.begin(), p.err.end(), '\n') == 1);  // one line
  for (const auto& s : says) CHECK_THAT(p.err, Catch::Contains(s));
}
}  // namespace

TEST_CASE("unifnd run refuses images that are wrong, naming the file and the problem") {
  const std::string hello = read_file(example("hello"));
  SECTION("not an ELF") {
    TempFile f("text.elf", "#!/bin/sh\necho this is a shell script\n");
    check_refused(f.path, {}, {"not an ELF file"});
  }
  SECTION("an empty file") {
    TempFile f("empty.elf", "");
    check_refused(f.path, {}, {"not an ELF file"});
  }
  SECTION("truncated inside the program headers") {
    TempFile f("cut-headers.elf", hello.substr(0, 200));
    check_refused(f.path, {}, {"program header table runs past the end of the file"});
  }
  SECTION("truncated inside a segment") {
    TempFile f("cut-segment.elf", hello.substr(0, hello.size() / 4));
    check_refused(f.path, {}, {"runs past the end of the file (truncated?)"});
  }
  SECTION("wrong machine") {
    std::string b = hello;
    b[18] = static_cast<char>(EM_AARCH64);  // e_machine, little-endian
    b[19] = 0;
    TempFile f("arm.elf", b);
    check_refused(f.path, {}, {"wrong machine 183 (x86-64 expected)"});
  }
  SECTION("a segment outside a 16 MiB guest's RAM") {
    // Say what is wrong (the segment is outside RAM), not a consequence of it (no room for the
    // heap).
    TempFile f("far.elf", hello_with_last_segment_at(64ull << 20));
    check_refused(f.path, {"--memory", "16"},
                  {"segment at 0x4000000", "does not fit in 16 MiB of guest RAM"});
  }
  SECTION("a 32-bit ELF with no multiboot header") {
    TempFile f("i386.elf", elf32_without_multiboot());
    check_refused(f.path, {}, {"multiboot"});
  }
  SECTION("a missing file") {
    check_refused("/nonexistent/unifn/missing.elf", {}, {"cannot open the image"});
  }
  SECTION("a directory") {
    auto p = unifnd_run("/tmp");
    CHECK(p.status == 1);
    CHECK_THAT(p.err, Catch::StartsWith("unifnd run: /tmp: ") &&
                          Catch::Contains("directory", Catch::CaseSensitive::No));
    CHECK_THAT(p.err, !Catch::Contains("larger than"));  // not a size read from a directory
  }
}

TEST_CASE("unifnd run: usage errors exit 2 with the reason and a pointer to --help") {
  auto p = run({kUnifnd, "run"});
  CHECK(p.status == 2);
  CHECK_THAT(p.err, Catch::Contains("IMAGE is required") && Catch::Contains("--help"));
  p = unifnd_run(example("hello"), {"--memory", "lots"});
  CHECK(p.status == 2);
  CHECK_THAT(p.err, Catch::Contains("--memory: 'lots' is not a whole number"));
  p = unifnd_run(example("hello"), {"--memory", "4"});
  CHECK(p.status == 2);
  CHECK_THAT(p.err, Catch::Contains("--memory: 4 is out of range (8 to 3072)"));
  p = run({kUnifnd, "run", "--help"});
  CHECK(p.status == 0);
  CHECK_THAT(p.out, Catch::Contains("IMAGE") && Catch::Contains("--memory") &&
                        Catch::Contains("--state-dir"));
  p = unifnd_run(example("hello"), {"--input", "/nonexistent/input"});
  CHECK(p.status == 1);
  CHECK_THAT(p.err, Catch::Contains("/nonexistent/input"));
}

TEST_CASE("unifnd run --state-dir: calloc'd memory reads as zero in the restored VM too") {
  const std::string dir = "/tmp/unifn-itest-state-" + std::to_string(getpid());
  run({"/bin/rm", "-rf", dir});
  auto cold = unifnd_run(guest("calloc_after_snapshot"), {"--state-dir", dir});
  CHECK(cold.status == 0);
  CHECK_THAT(cold.err, Catch::Contains("booted cold"));
  CHECK(cold.out == "zeroed\n");
  auto restored = unifnd_run(guest("calloc_after_snapshot"), {"--state-dir", dir});
  CHECK(restored.status == 0);
  CHECK_THAT(restored.err, Catch::Contains("restored from snapshot"));
  CHECK(restored.out == "zeroed\n");
  run({"/bin/rm", "-rf", dir});
}

TEST_CASE(
    "unifnd: each command has its --help, and the daemon's flags are refused as the file's keys "
    "are") {
  for (const char* cmd : {"check-config", "bench", "bench-accel"}) {
    INFO(cmd);
    auto p = run({kUnifnd, cmd, "--help"});
    CHECK(p.status == 0);
    CHECK_THAT(p.out, Catch::Contains("--platform"));
  }
  auto top = run({kUnifnd, "--help"});
  CHECK(top.status == 0);
  CHECK_THAT(top.out, Catch::Contains("--listen") && Catch::Contains("run") &&
                          Catch::Contains("bench-accel"));
  // Port 70000 once wrapped to 4464, and "host:abc" said "stoul".
  auto port = run({kUnifnd, "--listen", "0.0.0.0:70000"});
  CHECK(port.status == 2);
  CHECK_THAT(port.err, Catch::Contains(
                           "--listen: '0.0.0.0:70000': the port must be a number from 0 to 65535"));
  auto name = run({kUnifnd, "check-config", "--listen", "localhost:abc"});
  CHECK(name.status == 2);
  CHECK_THAT(name.err, Catch::Contains("--listen: ") && Catch::Contains("is not an IP address"));
  auto version = run({kUnifnd, "--version"});
  CHECK(version.status == 0);
  CHECK(!version.out.empty());
}
