// Third-party kernels through the real `unifnd run`: serial output, exit codes, bad images,
// timeouts.
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "test/kernels/kernel_images.h"
#include "test/support/platform_skip.h"
#include "test/support/temp_dir.h"

extern char** environ;

namespace {

using namespace unifn::test;
namespace fs = std::filesystem;

const std::string kUnifnd = UNIFN_BUILD_DIR "/unifnd";
const std::string kMultiboot = UNIFN_BUILD_DIR "/test/kernels/multiboot.elf";
const std::string kPvh = UNIFN_BUILD_DIR "/test/kernels/pvh.elf";

struct Run {
  int status = -1;  // exit code, or 128 + signal
  std::string out, err;
};

// Runs argv without a shell, capturing stdout and stderr separately.
Run run(std::vector<std::string> args) {
  int out_pipe[2], err_pipe[2];
  REQUIRE(pipe2(out_pipe, O_CLOEXEC) == 0);
  REQUIRE(pipe2(err_pipe, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out_pipe[1]);
  close(err_pipe[1]);
  REQUIRE(rc == 0);
  Run r;
  std::array<pollfd, 2> fds{pollfd{out_pipe[0], POLLIN, 0}, pollfd{err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds.data(), fds.size(), -1) < 0) break;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || !fds[i].revents) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  int st = 0;
  waitpid(pid, &st, 0);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

Run unifnd_run(const std::string& image, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{kUnifnd, "run", image};
  args.insert(args.end(), extra.begin(), extra.end());
  return run(args);
}

// A scratch directory for bad images, removed at the end of the test case.

// Writes an image into dir; returns its path.
std::string file(const unifn::test::TempDir& dir, const std::string& name, const Bytes& bytes) {
  // Safe: the bytes viewed as chars, for writing.
  return dir
      .write(name, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()))
      .string();
}

// The file offset of the multiboot magic in an image.
std::size_t magic_offset(const Bytes& b) {
  for (std::size_t off = 0; off + 4 <= std::min<std::size_t>(b.size(), 8192); off += 4)
    if (get32(b, off) == 0x1BADB002) return off;
  FAIL("no multiboot magic in the test kernel");
  return 0;
}

// A refused image: non-zero exit, nothing on stdout, one line on stderr naming the file and the
// problem.
void check_refused(const Run& r, const std::string& path, const std::string& problem) {
  INFO("stderr: " << r.err);
  CHECK(r.status != 0);
  CHECK(r.out.empty());
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.back() == '\n');
  CHECK_THAT(r.err, Catch::Contains(path) && Catch::Contains(problem));
}

// Kernels run ring-0 code, which only KVM runs.
void needs_kvm() {
  require_platform(unifn::vmm::PlatformKind::Kvm,
                   "multiboot and PVH kernels run ring-0 code, which only the kvm platform runs");
}

}  // namespace

TEST_CASE("the test kernels were built", "[kernels]") {
  REQUIRE(fs::exists(kUnifnd));
  REQUIRE(fs::exists(kMultiboot));
  REQUIRE(fs::exists(kPvh));
}

TEST_CASE("a multiboot1 kernel boots, reads its boot info and exits through isa-debug-exit",
          "[kernels][multiboot]") {
  needs_kvm();
  auto r = unifnd_run(kMultiboot, {"--cmdline", "console=ttyS0 answer=42"});
  INFO("stderr: " << r.err);
  CHECK(r.out ==
        "hello from multiboot\n"
        "cmdline: " +
            kMultiboot +
            " console=ttyS0 answer=42\n"
            "loader: unifn\n"
            "memory: 64 MiB\n");
  CHECK(r.err.empty());
  CHECK(r.status == 33);  // (0x10 << 1) | 1
}

TEST_CASE("a multiboot1 kernel sees the memory size it was given", "[kernels][multiboot]") {
  needs_kvm();
  auto r = unifnd_run(kMultiboot, {"--memory", "128"});
  INFO("stderr: " << r.err);
  CHECK(r.out ==
        "hello from multiboot\ncmdline: " + kMultiboot + "\nloader: unifn\nmemory: 128 MiB\n");
  CHECK(r.status == 33);
}

TEST_CASE("a PVH kernel boots, reads hvm_start_info and exits through isa-debug-exit",
          "[kernels][pvh]") {
  needs_kvm();
  auto r = unifnd_run(kPvh, {"--cmdline", "console=ttyS0 answer=42"});
  INFO("stderr: " << r.err);
  CHECK(r.out == "hello from pvh\ncmdline: console=ttyS0 answer=42\nmemory: 64 MiB\n");
  CHECK(r.err.empty());
  CHECK(r.status == 33);

  auto plain = unifnd_run(kPvh, {"--memory", "32"});
  CHECK(plain.out == "hello from pvh\ncmdline: \nmemory: 32 MiB\n");
  CHECK(plain.status == 33);
}

TEST_CASE("PVH wins over multiboot when an image has both", "[kernels][pvh]") {
  needs_kvm();
  // A 32-bit ELF with a multiboot header and a PVH note: each entry writes its own letter.
  const Bytes mb = multiboot_header(0x3);
  const Bytes mb_code =
      code::cat({code::serial_char('M'), code::serial_char('\n'), code::out_f4(1)});
  const Bytes pvh_code =
      code::cat({code::serial_char('P'), code::serial_char('\n'), code::out_f4(2)});
  Bytes text = mb;
  const std::uint32_t mb_entry = 0x100000 + static_cast<std::uint32_t>(text.size());
  text.insert(text.end(), mb_code.begin(), mb_code.end());
  const std::uint32_t pvh_entry = 0x100000 + static_cast<std::uint32_t>(text.size());
  text.insert(text.end(), pvh_code.begin(), pvh_code.end());
  unifn::test::TempDir dir;
  auto both = file(dir, "both.elf",
                   elf32(mb_entry, {Segment{0x100000, 0x100000, text}},
                         {Note{"Xen", 18, pvh_note_desc32(pvh_entry)}}));
  auto r = unifnd_run(both);
  INFO("stderr: " << r.err);
  CHECK(r.out == "P\n");
  CHECK(r.status == 5);

  auto mb_only = file(dir, "mb.elf", elf32(mb_entry, {Segment{0x100000, 0x100000, text}}));
  auto m = unifnd_run(mb_only);
  CHECK(m.out == "M\n");
  CHECK(m.status == 3);
}

TEST_CASE("a raw multiboot binary with the a.out address fields boots", "[kernels][multiboot]") {
  needs_kvm();
  unifn::test::TempDir dir;
  auto img = file(dir, "aout.bin",
                  aout_kernel(code::cat({code::serial_char('o'), code::serial_char('k'),
                                         code::serial_char('\n'), code::out_f4(5)}),
                              0x200000, 0, 4096));
  auto r = unifnd_run(img);
  INFO("stderr: " << r.err);
  CHECK(r.out == "ok\n");
  CHECK(r.status == 11);
}

TEST_CASE("a kernel that halts exits 0", "[kernels]") {
  needs_kvm();
  unifn::test::TempDir dir;
  auto r = unifnd_run(
      file(dir, "halt.bin", aout_kernel(code::cat({code::serial_char('h'), code::kHlt}))));
  INFO("stderr: " << r.err);
  CHECK(r.out == "h");  // an unterminated last line still comes out
  CHECK(r.status == 0);
}

TEST_CASE("a kernel that loops forever is stopped by --timeout-ms with exit code 124",
          "[kernels]") {
  needs_kvm();
  unifn::test::TempDir dir;
  auto img = file(dir, "spin.bin", aout_kernel(code::kSpin));
  auto t0 = std::chrono::steady_clock::now();
  auto r = unifnd_run(img, {"--timeout-ms", "300"});
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  INFO("stderr: " << r.err);
  CHECK(r.status == 124);
  CHECK(ms < 5000);
  CHECK_THAT(r.err,
             Catch::Contains(img) && Catch::Contains("timeout") && Catch::Contains("deadline"));
}

TEST_CASE("a kernel that triple-faults gives a clear error", "[kernels]") {
  needs_kvm();
  unifn::test::TempDir dir;
  auto img = file(dir, "ud2.bin", aout_kernel(code::kUd2));
  auto r = unifnd_run(img);
  INFO("stderr: " << r.err);
  CHECK(r.status == 1);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK_THAT(r.err, Catch::Contains(img) && Catch::Contains("triple fault") &&
                        Catch::Contains("rip 0x100020"));
}

TEST_CASE("bad kernel images are refused with one line naming the file and the problem",
          "[kernels][bad]") {
  unifn::test::TempDir dir;
  const Bytes good = read_file(kMultiboot);
  REQUIRE(good.size() > 0x1100);
  const std::size_t mb = magic_offset(good);

  SECTION("not ELF and no multiboot header") {
    auto p =
        file(dir, "junk.bin", Bytes{'n', 'o', 't', ' ', 'a', ' ', 'k', 'e', 'r', 'n', 'e', 'l'});
    check_refused(unifnd_run(p), p, "not an ELF");
  }
  SECTION("ELF header cut short") {
    auto p = file(dir, "short.elf", Bytes(good.begin(), good.begin() + 40));
    check_refused(unifnd_run(p), p, "truncated ELF header");
  }
  SECTION("segments cut short") {
    auto p = file(dir, "cut.elf",
                  Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(mb + 64)));
    check_refused(unifnd_run(p), p, "runs past the end of the file (truncated?)");
  }
  SECTION("wrong machine") {
    Bytes b = good;
    put16(b, 18, EM_ARM);
    auto p = file(dir, "arm.elf", b);
    check_refused(unifnd_run(p), p, "wrong machine 40 (ARM)");
  }
  SECTION("32-bit ELF with no multiboot header") {
    Bytes b = good;
    put32(b, mb, 0);
    auto p = file(dir, "nomb.elf", b);
    check_refused(unifnd_run(p), p, "32-bit ELF with no multiboot header");
  }
  SECTION("multiboot header with a bad checksum") {
    Bytes b = good;
    put32(b, mb + 8, get32(b, mb + 8) + 1);
    auto p = file(dir, "badsum.elf", b);
    check_refused(unifnd_run(p), p, "wrong checksum");
  }
  SECTION("raw binary with a bad checksum") {
    Bytes b = aout_kernel(code::out_f4(1));
    put32(b, 8, get32(b, 8) ^ 0x100);
    auto p = file(dir, "badsum.bin", b);
    check_refused(unifnd_run(p), p, "wrong checksum");
  }
  SECTION("a segment outside guest RAM") {
    Bytes b = elf32(
        0x100000, {Segment{0x100000, 0x100000, code::cat({multiboot_header(0x3), code::out_f4(1)})},
                   Segment{0x7FF00000, 0x7FF00000, Bytes(16, 0x90)}});
    auto p = file(dir, "high.elf", b);
    check_refused(unifnd_run(p), p, "is outside the 64 MiB of guest RAM");
  }
  SECTION("a segment over the boot structures") {
    auto p = file(dir, "low.bin", aout_kernel(code::out_f4(1), 0x1000));
    check_refused(unifnd_run(p), p, "overlaps the boot structures");
  }
  SECTION("a required multiboot feature unifn cannot give") {
    auto p = file(dir, "needs.bin", aout_kernel(code::out_f4(1), 0x100000, 1u << 3));
    check_refused(unifnd_run(p), p, "requires features unifn cannot provide");
  }
  SECTION("a 64-bit ELF with neither a PVH note nor a unifn note") {
    Bytes b =
        elf64(0x100000,
              {Segment{0x100000, 0x100000, code::cat({multiboot_header(0x3), code::out_f4(1)})}});
    auto p = file(dir, "mb64.elf", b);
    check_refused(unifnd_run(p), p, "64-bit ELF multiboot kernel needs the a.out address fields");
  }
}

TEST_CASE("on the sandbox platform a kernel is refused with a clear error that names /dev/kvm",
          "[kernels][sandbox]") {
  require_platform(unifn::vmm::PlatformKind::Sandbox,
                   "the kvm platform boots kernels (the other tests here)");
  for (const auto& k : {kMultiboot, kPvh}) {
    auto r = unifnd_run(k);
    INFO("stderr: " << r.err);
    CHECK(r.status == 1);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::Contains(k) && Catch::Contains("runs ring-0 code") &&
                          Catch::Contains("/dev/kvm"));
  }
}
