// The sandbox helper: run under ptrace, it maps guest RAM, locks itself down and stops at an int3.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "vmm/platform/sandbox/helper_image.h"
#include "vmm/platform/sandbox/sandbox_abi.h"

namespace {

constexpr std::size_t kRamBytes = 4u << 20;

// Moves fd to a number >= 10 (close-on-exec), so that dup2 onto 3 and 4 in the child cannot
// collide.
int high(int fd) {
  REQUIRE(fd >= 0);
  const int h = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  ::close(fd);
  REQUIRE(h >= 10);
  return h;
}

void write_all(int fd, const void* data, std::size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    REQUIRE(w > 0);
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The helper in a child process, PTRACE_SEIZEd before it execs; killed and reaped at the end.
class TracedHelper {
 public:
  TracedHelper() = default;
  ~TracedHelper() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) == pid_ && !WIFEXITED(status) && !WIFSIGNALED(status)) {
      }
    }
    for (int fd : {image_, ram_, spec_r_, spec_w_, go_r_, go_w_})
      if (fd >= 0) ::close(fd);
  }
  TracedHelper(const TracedHelper&) = delete;
  TracedHelper& operator=(const TracedHelper&) = delete;

  // Forks a child, seizes it, sends the spec, lets it exec the helper and waits for its first stop
  // or its end.
  int start(const unifn_sandbox_spec& spec) {
    const auto image = unifn::vmm::sandbox_helper_image();
    REQUIRE(image.size() > 64);
    image_ = high(::memfd_create("unifn-sandbox-helper", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    write_all(image_, image.data(), image.size());
    REQUIRE(::fcntl(image_, F_ADD_SEALS,
                    F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) == 0);
    ram_ = high(::memfd_create("unifn-ram", MFD_CLOEXEC));
    REQUIRE(::ftruncate(ram_, kRamBytes + 4096) == 0);
    unsigned char page[4096];
    unifn_sandbox_fill_helper_page(page);
    REQUIRE(::pwrite(ram_, page, sizeof page, kRamBytes) == static_cast<ssize_t>(sizeof page));
    int spec_pipe[2], go_pipe[2];
    REQUIRE(::pipe2(spec_pipe, O_CLOEXEC) == 0);
    spec_r_ = high(spec_pipe[0]), spec_w_ = high(spec_pipe[1]);
    REQUIRE(::pipe2(go_pipe, O_CLOEXEC) == 0);
    go_r_ = high(go_pipe[0]), go_w_ = high(go_pipe[1]);

    pid_ = ::fork();
    if (pid_ == 0) {  // the child: async-signal-safe calls only
      char byte;
      if (::read(go_r_, &byte, 1) != 1) ::_exit(126);
      if (::dup2(spec_r_, UNIFN_SANDBOX_SPEC_FD) < 0 || ::dup2(ram_, UNIFN_SANDBOX_RAM_FD) < 0)
        ::_exit(126);
      char name[] = "unifn-sandbox-helper";
      char* argv[] = {name, nullptr};
      char* envp[] = {nullptr};
      ::execveat(image_, "", argv, envp, AT_EMPTY_PATH);
      ::_exit(127);
    }
    REQUIRE(pid_ > 0);
    // ptrace takes its options in the void* data argument.
    REQUIRE(::ptrace(PTRACE_SEIZE, pid_, nullptr, reinterpret_cast<void*>(PTRACE_O_EXITKILL)) == 0);
    write_all(spec_w_, &spec, sizeof spec);
    write_all(go_w_, "g", 1);
    return wait();
  }

  int wait() {
    int status = 0;
    pid_t got;
    while ((got = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
    }
    REQUIRE(got == pid_);
    if (WIFEXITED(status) || WIFSIGNALED(status)) pid_ = -1;  // reaped
    return status;
  }

  pid_t pid() const { return pid_; }
  int ram() const { return ram_; }

 private:
  pid_t pid_ = -1;
  int image_ = -1, ram_ = -1, spec_r_ = -1, spec_w_ = -1, go_r_ = -1, go_w_ = -1;
};

unifn_sandbox_spec two_region_spec() {
  unifn_sandbox_spec spec{};
  spec.magic = UNIFN_SANDBOX_MAGIC;
  spec.flags = UNIFN_SANDBOX_TRACK_WRITES;
  spec.region_count = 2;
  spec.helper_offset = kRamBytes;
  spec.regions[0] = {0x100000, 0x100000, 1 | 4, 0};  // R-X
  spec.regions[1] = {0x200000, 0x200000, 1 | 2, 1};  // RW-, tracked
  return spec;
}

}  // namespace

TEST_CASE(
    "sandbox helper: maps RAM, locks itself down, stops at int3, a syscall elsewhere dies of "
    "SIGSYS",
    "[vmm][sandbox]") {
  TracedHelper helper;
  const int status = helper.start(two_region_spec());
  INFO("wait status " << status << ": "
                      << (WIFEXITED(status) ? unifn_sandbox_exit_reason(WEXITSTATUS(status)) : ""));
  REQUIRE(WIFSTOPPED(status));
  REQUIRE(WSTOPSIG(status) == SIGTRAP);

  const std::string proc = "/proc/" + std::to_string(helper.pid());
  const std::string st = slurp(proc + "/status");
  CHECK(st.find("Seccomp:\t2\n") != std::string::npos);
  CHECK(st.find("NoNewPrivs:\t1\n") != std::string::npos);

  const std::string maps = slurp(proc + "/maps");
  INFO(maps);
  CHECK(maps.find("00100000-00200000 r-xs 00100000 ") != std::string::npos);
  CHECK(maps.find("00200000-00400000 rw-s 00200000 ") != std::string::npos);
  CHECK(maps.find("cffff000-d0000000 r-xs ") != std::string::npos);
  std::istringstream lines(maps);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string range, perms;
    fields >> range >> perms;
    CHECK_FALSE((perms.size() >= 3 && perms[1] == 'w' && perms[2] == 'x'));
  }

  user_regs_struct regs{};
  REQUIRE(::ptrace(PTRACE_GETREGS, helper.pid(), nullptr, &regs) == 0);
  if (regs.rax & UNIFN_SANDBOX_HAVE_TRACKING) {
    CHECK(static_cast<long>(regs.rdi) >= 0);
  } else {
    WARN(
        "this kernel gives the sandbox no userfaultfd write-protect tracking (Linux 6.7+ with "
        "WP_ASYNC)");
    CHECK(static_cast<long>(regs.rdi) == -1);
  }

  // getpid from the R-X region, not the helper page: seccomp kills the process.
  const unsigned char getpid[] = {0xB8, 39, 0, 0, 0, 0x0F, 0x05};  // mov $39,%eax; syscall
  void* ram = ::mmap(nullptr, kRamBytes, PROT_READ | PROT_WRITE, MAP_SHARED, helper.ram(), 0);
  REQUIRE(ram != MAP_FAILED);
  std::memcpy(static_cast<unsigned char*>(ram) + 0x100000, getpid, sizeof getpid);
  ::munmap(ram, kRamBytes);
  regs.rip = 0x100000;
  REQUIRE(::ptrace(PTRACE_SETREGS, helper.pid(), nullptr, &regs) == 0);
  REQUIRE(::ptrace(PTRACE_CONT, helper.pid(), nullptr, nullptr) == 0);
  const int end = helper.wait();
  INFO("wait status " << end);
  REQUIRE(WIFSIGNALED(end));
  CHECK(WTERMSIG(end) == SIGSYS);
}

TEST_CASE("sandbox helper: a spec with a bad magic makes it exit with UNIFN_SANDBOX_EXIT_SPEC",
          "[vmm][sandbox]") {
  TracedHelper helper;
  unifn_sandbox_spec spec = two_region_spec();
  spec.magic ^= 1;
  const int status = helper.start(spec);
  INFO("wait status " << status);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == UNIFN_SANDBOX_EXIT_SPEC);
}
