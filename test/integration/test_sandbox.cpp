// The sandbox platform's own protections, seen from outside the guest process: system calls the
// personality does not offer change nothing on the host, memory the guest has no right to stops
// it, and the process is locked down (seccomp, no_new_privs, W^X, no descriptors but its
// userfaultfd). Where a check makes sense on KVM too, the test runs there as well.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <elf.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "vmm/guest/function_vm.h"
#include "test/integration/helpers.h"
#include "vmm/platform/sandbox/sandbox_abi.h"
#include "vmm/platform/sandbox/sandbox_machine.h"
#include "test/support/platform_skip.h"

using namespace unifn;
using namespace unifn::itest;
using namespace std::chrono_literals;
using unifn::test::require_platform;
using unifn::test::test_platform;

namespace {

vmm::Outcome call(vmm::FunctionVm& vm, const std::string& body,
                  std::chrono::milliseconds limit = 5s) {
  return vm.invoke(std::span(reinterpret_cast<const std::uint8_t*>(body.data()), body.size()),
                   "text/plain",  // Safe: chars as bytes.
                   std::chrono::steady_clock::now() + limit);
}

bool on_sandbox() { return test_platform() == vmm::PlatformKind::Sandbox; }

pid_t guest_pid(vmm::FunctionVm& vm) {
  return dynamic_cast<vmm::SandboxMachine&>(vm.machine()).pid();
}

std::string proc_file(pid_t pid, const std::string& name) {
  return read_file("/proc/" + std::to_string(pid) + "/" + name);
}

// A process is gone once /proc has no entry for it or it is a zombie (dead, not yet reaped).
bool process_gone(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  if (!f) return true;
  std::string stat((std::istreambuf_iterator<char>(f)), {});
  auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return true;
  const char state = stat[close + 2];
  return state == 'Z' || state == 'X';
}

struct Mapping {
  std::uint64_t start = 0, end = 0, offset = 0;
  std::string perms, path;
  bool writable() const { return perms.size() > 1 && perms[1] == 'w'; }
  bool executable() const { return perms.size() > 2 && perms[2] == 'x'; }
  bool shared() const { return perms.size() > 3 && perms[3] == 's'; }
};

std::vector<Mapping> maps_of(pid_t pid) {
  std::vector<Mapping> out;
  std::istringstream in(proc_file(pid, "maps"));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    Mapping m;
    std::string range, offset, dev, inode;
    l >> range >> m.perms >> offset >> dev >> inode;
    std::getline(l >> std::ws, m.path);
    auto dash = range.find('-');
    m.start = std::stoull(range.substr(0, dash), nullptr, 16);
    m.end = std::stoull(range.substr(dash + 1), nullptr, 16);
    m.offset = std::stoull(offset, nullptr, 16);
    out.push_back(m);
  }
  return out;
}

std::string describe(const std::vector<Mapping>& maps) {
  std::string s;
  for (const auto& m : maps)
    s += fmt::format("{:x}-{:x} {} {:x} {}\n", m.start, m.end, m.perms, m.offset, m.path);
  return s;
}

// Every descriptor the process holds, as "fd -> target".
std::vector<std::string> fds_of(pid_t pid) {
  std::vector<std::string> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (!d) throw std::runtime_error("cannot list " + dir + ": " + std::strerror(errno));
  while (auto* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    char target[512];
    ssize_t n = readlink((dir + "/" + name).c_str(), target, sizeof target - 1);
    out.push_back(name + " -> " +
                  (n < 0 ? std::string("?") : std::string(target, static_cast<std::size_t>(n))));
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// "name=value" lines into a map.
std::map<std::string, std::string> lines_of(const std::string& body) {
  std::map<std::string, std::string> out;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

bool exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Paths a guest must not manage to create: none there before, and none left behind whatever
// the test's outcome.
struct NoSuchFiles {
  std::vector<std::string> paths;
  explicit NoSuchFiles(std::vector<std::string> p) : paths(std::move(p)) {
    for (const auto& f : paths) unlink(f.c_str());
  }
  ~NoSuchFiles() {
    for (const auto& f : paths) unlink(f.c_str());
  }
};

std::string unique_tmp_prefix() {
  return fmt::format("/tmp/unifn-sandbox-escape-{}-{}", getpid(),
                     std::chrono::steady_clock::now().time_since_epoch().count());
}

}  // namespace

TEST_CASE(
    "system calls outside the personality fail, touch nothing on the host, and the guest serves on",
    "[sandbox]") {
  // Runs on KVM too (the same personality answers there); the look at the host process is the
  // sandbox's alone.
  const std::string prefix = unique_tmp_prefix();
  const NoSuchFiles files({prefix, prefix + "-open", prefix + "-exec", prefix + "-int80"});

  std::vector<std::string> console;
  auto vm = vmm::FunctionVm::boot(vmm::FunctionImage::load(guest("sandbox_escape")), {},
                                  [&console](std::string_view l) { console.emplace_back(l); });
  REQUIRE(vm->parked());
  pid_t pid = on_sandbox() ? guest_pid(*vm) : 0;
  std::vector<Mapping> maps_before;
  std::vector<std::string> fds_before;
  if (on_sandbox()) {
    maps_before = maps_of(pid);
    fds_before = fds_of(pid);
  }

  auto out = call(*vm, prefix);
  INFO("stop: " << out.stop.message << "\nbody:\n" << out.body);
  REQUIRE(out.ok());
  CHECK(out.status == 200);
  auto got = lines_of(out.body);
  for (const char* name : {"open", "openat", "open_creat", "creat", "socket", "fork", "vfork",
                           "clone", "execve", "kill", "ptrace_traceme", "ptrace_attach", "unshare",
                           "mount", "memfd_create", "userfaultfd"}) {
    INFO("system call " << name);
    REQUIRE(got.count(name) == 1);
    CHECK(std::stol(got[name]) < 0);  // -ENOSYS, -ENOENT, ...: never a descriptor, pid or success
  }
  // Answered with success and nothing done (the sandbox checks below look at what really changed).
  CHECK(got["mprotect_text"] == "0");
  CHECK(got["mprotect_data"] == "0");
  CHECK(got["mprotect_rodata"] == "0");
  CHECK(got["close"] == "0");
  CHECK(got.count("mmap_rwx") == 1);

  if (on_sandbox()) {
    // The 32-bit ABI (int $0x80) is stopped like `syscall` and answered ENOSYS. (On KVM there is
    // no gate for vector 0x80: the invocation ends with an exception instead.)
    auto int80 = call(*vm, "int80:" + prefix + "-int80");
    INFO("int $0x80: " << int80.stop.message << " " << int80.body);
    REQUIRE(int80.ok());
    CHECK(int80.body == "int80_creat=-38\n");
  }

  // Nothing the calls asked for happened on the host.
  for (const auto& f : files.paths) {
    INFO("file " << f);
    CHECK_FALSE(exists(f));
  }
  CHECK(kill(1, 0) == 0);  // pid 1 (and this process, trivially) survived kill(1, SIGKILL)

  if (on_sandbox()) {
    // The guest's mprotect/mmap to RWX and its closes changed nothing in the real process.
    auto maps_after = maps_of(pid);
    INFO("maps before:\n" << describe(maps_before) << "maps after:\n" << describe(maps_after));
    CHECK(describe(maps_after) == describe(maps_before));
    for (const auto& m : maps_after) {
      INFO(fmt::format("mapping {:x}-{:x} {} {}", m.start, m.end, m.perms, m.path));
      CHECK_FALSE((m.writable() && m.executable()));
    }
    CHECK(fds_of(pid) == fds_before);
    CHECK(kill(pid, 0) == 0);
    CHECK_FALSE(process_gone(pid));
  }

  // Still alive, and it serves a second request the same way.
  auto again = call(*vm, prefix);
  REQUIRE(again.ok());
  CHECK(again.body == out.body);
  for (const auto& f : files.paths) CHECK_FALSE(exists(f));
  vm.reset();
  if (on_sandbox()) CHECK(process_gone(pid));  // the machine took its process with it
}

namespace {

struct Case {
  std::string body;
  vmm::StopKind kind;
  std::vector<std::string> says;
  std::chrono::milliseconds limit = 5s;
  // When set: the fault's address lies in one of the image's PT_LOAD segments with exactly these
  // flags (PF_R, PF_W, PF_X), e.g. its read-only data for a write to a `static const` array.
  std::optional<std::uint32_t> segment_flags = std::nullopt;
};

// The address a "..., address 0x..." message names.
std::optional<std::uint64_t> fault_address(const std::string& message) {
  auto at = message.rfind("address 0x");
  if (at == std::string::npos) return std::nullopt;
  return std::stoull(message.substr(at + 10), nullptr, 16);
}

std::string flags_name(std::uint32_t flags) {
  return fmt::format("{}{}{}", flags & PF_R ? 'R' : '-', flags & PF_W ? 'W' : '-',
                     flags & PF_X ? 'X' : '-');
}

// The flags of the image segment that holds addr, named; "none" outside every segment.
std::string segment_at(const vmm::FunctionImage& image, std::uint64_t addr) {
  for (const auto& seg : image.elf.segments)
    if (addr >= seg.gpa && addr < seg.gpa + seg.mem_size) return flags_name(seg.flags);
  return "none";
}

// Boots the guest once, snapshots it, and for each case restores an instance that misbehaves (and
// must be stopped as the case says, its process gone once the instance is dropped) and then a
// fresh instance from the same snapshot that must answer "ok".
void check_contained(const std::vector<Case>& cases,
                     const NoSuchFiles& must_not_exist = NoSuchFiles({})) {
  auto image = vmm::FunctionImage::load(guest("sandbox_misbehave"));
  vmm::FunctionVmConfig cfg;
  auto booted = vmm::FunctionVm::boot(image, cfg, {});
  auto snap = booted->snapshot(vmm::Fd(memfd_create("unifn-itest-sandbox", MFD_CLOEXEC)));
  booted.reset();
  for (const auto& c : cases) {
    INFO("request '" << c.body << "'");
    auto bad = vmm::FunctionVm::restore(snap, image, cfg, {});
    const pid_t pid = on_sandbox() ? guest_pid(*bad) : 0;
    const auto t0 = std::chrono::steady_clock::now();
    auto out = call(*bad, c.body, c.limit);
    INFO("stop " << vmm::to_string(out.stop.kind) << ": " << out.stop.message << "; body '"
                 << out.body << "'");
    CHECK(out.stop.kind == c.kind);
    for (const auto& s : c.says) CHECK_THAT(out.stop.message, Catch::Contains(s));
    if (c.segment_flags) {
      auto addr = fault_address(out.stop.message);
      REQUIRE(addr);
      CHECK(segment_at(*image, *addr) == flags_name(*c.segment_flags));
    }
    CHECK(out.body.empty());
    CHECK(std::chrono::steady_clock::now() - t0 < c.limit + 2s);
    CHECK_FALSE(bad->parked());
    bad.reset();
    if (on_sandbox()) CHECK(process_gone(pid));

    auto fresh = vmm::FunctionVm::restore(snap, image, cfg, {});
    auto ok = call(*fresh, "ok");
    INFO("the fresh instance: " << ok.stop.message);
    REQUIRE(ok.ok());
    CHECK(ok.status == 200);
    CHECK(ok.body == "ok");
  }
  for (const auto& f : must_not_exist.paths) {
    INFO("file " << f);
    CHECK_FALSE(exists(f));
  }
}

}  // namespace

TEST_CASE("a write outside guest RAM and an endless loop are stopped, and a fresh restore serves",
          "[sandbox]") {
  // The same on KVM: no page table maps 0x7000000000 there either, and the deadline holds.
  check_contained({
      {"write 0x7000000000", vmm::StopKind::Fault, {"#PF page fault", "address 0x7000000000"}},
      {"loop", vmm::StopKind::Timeout, {"deadline"}, 300ms},
  });
}

TEST_CASE(
    "writes to the system call page, read-only data and code, and running data, are page faults",
    "[sandbox]") {
  require_platform(
      vmm::PlatformKind::Sandbox,
      "KVM maps guest RAM whole (segment rights are not enforced) and has no system call page");
  const std::string page = fmt::format("{:#x}", UNIFN_SANDBOX_HELPER_PAGE);
  const std::string file = unique_tmp_prefix() + "-helper";
  const NoSuchFiles files({file});
  check_contained(
      {
          {"write " + page, vmm::StopKind::Fault, {"#PF page fault", "address " + page}},
          {"rodata", vmm::StopKind::Fault, {"#PF page fault", "address 0x"}, 5s, PF_R},
          {"text", vmm::StopKind::Fault, {"#PF page fault", "address 0x"}, 5s, PF_R | PF_X},
          // The fetch faults: rip is the data page's address.
          {"exec_data", vmm::StopKind::Fault, {"#PF page fault", "address 0x"}, 5s, PF_R | PF_W},
          // The page's `syscall` is stopped and emulated like any other (creat: ENOSYS); the int3
          // after it ends the invocation.
          {"syscall_at " + page + " " + file, vmm::StopKind::Fault, {"#BP"}},
      },
      files);
}

TEST_CASE(
    "the guest process runs under seccomp and no_new_privs, with W^X shared RAM and no descriptors",
    "[sandbox]") {
  require_platform(vmm::PlatformKind::Sandbox,
                   "on KVM the guest is a VM inside the daemon, not a process of its own");
  vmm::FunctionVmConfig cfg;
  auto vm = vmm::FunctionVm::boot(vmm::FunctionImage::load(example("echo")), cfg, {});
  REQUIRE(call(*vm, "hi").body == "hi");
  const pid_t pid = guest_pid(*vm);

  const auto status = proc_file(pid, "status");
  INFO("/proc/" << pid << "/status:\n" << status);
  CHECK_THAT(status, Catch::Contains("Seccomp:\t2\n"));
  CHECK_THAT(status, Catch::Contains("NoNewPrivs:\t1\n"));
  CHECK_THAT(status, Catch::Contains("CapEff:\t0000000000000000\n"));

  const auto maps = maps_of(pid);

  INFO("/proc/" << pid << "/maps:\n" << describe(maps));
  for (const auto& m : maps) {
    INFO(fmt::format("mapping {:x}-{:x} {} {}", m.start, m.end, m.perms, m.path));
    CHECK_FALSE((m.writable() && m.executable()));
  }
  // Guest RAM: shared mappings of the RAM memfd, file offset == guest address, covering
  // [first user page, end of RAM) without a gap, and nothing else in that range.
  std::uint64_t next = 0x10000;
  const std::uint64_t ram_end = cfg.memory_bytes;
  for (const auto& m : maps) {
    if (m.start >= ram_end || m.end <= 0x10000) continue;
    INFO(fmt::format("mapping {:x}-{:x} {} {:x} {}", m.start, m.end, m.perms, m.offset, m.path));
    CHECK_THAT(m.path, Catch::StartsWith("/memfd:unifn-guest-ram"));
    CHECK(m.shared());
    CHECK(m.offset == m.start);
    CHECK(m.start == next);
    next = m.end;
  }
  CHECK(next == ram_end);
  // The one page that may make system calls: read-execute, from the same memfd past RAM.
  bool helper_page = false;
  for (const auto& m : maps) {
    if (m.start != UNIFN_SANDBOX_HELPER_PAGE) continue;
    helper_page = true;
    CHECK(m.end == UNIFN_SANDBOX_HELPER_PAGE + 4096);
    CHECK(m.perms == "r-xs");
    CHECK_THAT(m.path, Catch::StartsWith("/memfd:unifn-guest-ram"));
    CHECK(m.offset == ram_end);
  }
  CHECK(helper_page);

  const auto fds = fds_of(pid);
  std::string listed;
  for (const auto& fd : fds) listed += fd + "; ";
  INFO("descriptors: " << listed);
  CHECK(fds.size() <= 1);
  for (const auto& fd : fds) CHECK_THAT(fd, Catch::EndsWith(" -> anon_inode:[userfaultfd]"));
  if (dynamic_cast<vmm::SandboxMachine&>(vm->machine()).tracks_writes()) CHECK(fds.size() == 1);
}

TEST_CASE(
    "a guest process killed from outside fails its call with the reason, and a fresh restore "
    "serves",
    "[sandbox]") {
  require_platform(vmm::PlatformKind::Sandbox,
                   "on KVM the guest is a VM inside the daemon, not a process to kill");
  auto image = vmm::FunctionImage::load(example("echo"));
  vmm::FunctionVmConfig cfg;
  auto booted = vmm::FunctionVm::boot(image, cfg, {});
  auto snap = booted->snapshot(vmm::Fd(memfd_create("unifn-itest-sandbox", MFD_CLOEXEC)));
  auto vm = vmm::FunctionVm::restore(snap, image, cfg, {});
  REQUIRE(call(*vm, "before").body == "before");
  const pid_t pid = guest_pid(*vm);
  REQUIRE(::kill(pid, SIGKILL) == 0);  // the OOM killer, or an administrator
  auto out = call(*vm, "after");
  INFO(out.stop.message);
  CHECK(out.stop.kind == vmm::StopKind::Fault);
  CHECK_THAT(out.stop.message, Catch::Contains("killed by SIGKILL"));
  auto again = call(*vm, "again");  // the instance stays failed, and says so
  CHECK(again.stop.kind == vmm::StopKind::Fault);
  vm.reset();
  CHECK(process_gone(pid));
  auto fresh = vmm::FunctionVm::restore(snap, image, cfg, {});
  CHECK(call(*fresh, "fresh").body == "fresh");
}
