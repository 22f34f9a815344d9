// The sandbox platform under the real daemon: its guest processes never outlive it.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test/e2e/daemon_fixture.h"
#include "test/support/platform_skip.h"

using namespace unifn::test;

namespace {

struct ProcStat {
  char state = '?';
  pid_t ppid = 0;
  unsigned long long start = 0;  // start time in clock ticks since boot: tells a reused pid apart
};

std::optional<ProcStat> stat_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  if (!f) return std::nullopt;
  std::string s((std::istreambuf_iterator<char>(f)), {});
  auto close = s.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(s.substr(close + 2));
  ProcStat st;
  std::string skip;
  in >> st.state >> st.ppid;
  for (int field = 5; field < 22; ++field) in >> skip;  // pgrp .. itrealvalue
  in >> st.start;
  if (!in) return std::nullopt;
  return st;
}

struct Child {
  pid_t pid;
  unsigned long long start;
  std::string cmdline;
};

std::vector<Child> children_of(pid_t parent) {
  std::vector<Child> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (auto* e = readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end) continue;
    auto st = stat_of(static_cast<pid_t>(pid));
    if (!st || st->ppid != parent) continue;
    std::ifstream f("/proc/" + std::to_string(pid) + "/cmdline");
    std::string cmd((std::istreambuf_iterator<char>(f)), {});
    for (auto& c : cmd)
      if (c == '\0') c = ' ';
    out.push_back({static_cast<pid_t>(pid), st->start, cmd});
  }
  closedir(d);
  return out;
}

// Gone: no /proc entry, a zombie (dead, waiting for whoever reaps it), or another process that
// got the pid since.
bool gone(pid_t pid, unsigned long long start) {
  auto st = stat_of(pid);
  return !st || st->state == 'Z' || st->state == 'X' || st->start != start;
}

}  // namespace

TEST_CASE("killing the daemon with SIGKILL leaves no sandbox guest process behind", "[sandbox]") {
  require_platform(
      unifn::vmm::PlatformKind::Sandbox,
      "on KVM guests are VMs inside the daemon process: nothing of theirs can outlive it");
  Daemon d("--platform sandbox");
  REQUIRE(curl("-X POST --data-binary hi " + d.url("/function/echo")) == "hi");

  auto children = children_of(d.pid());
  std::string listed;
  for (const auto& c : children) listed += std::to_string(c.pid) + " '" + c.cmdline + "'\n";
  INFO("children of the daemon (pid " << d.pid() << "):\n" << listed);
  REQUIRE_FALSE(children.empty());
  CHECK(std::any_of(children.begin(), children.end(),
                    [](const Child& c) { return c.cmdline.rfind("unifn-sandbox", 0) == 0; }));

  d.signal(SIGKILL);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  std::vector<Child> left = children;
  while (!left.empty() && std::chrono::steady_clock::now() < deadline) {
    std::erase_if(left, [](const Child& c) { return gone(c.pid, c.start); });
    if (!left.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::string survivors;
  for (const auto& c : left) survivors += std::to_string(c.pid) + " '" + c.cmdline + "'\n";
  INFO("still running 2 s after the daemon was killed:\n" << survivors);
  CHECK(left.empty());
}

// A host without a usable /dev/kvm, as a user sees it: unifnd as nobody, who may not open it here.
namespace {
bool nobody_can_open_kvm() {
  return sh("setpriv --reuid 65534 --regid 65534 --clear-groups sh -c 'exec 3<>/dev/kvm' "
            "2>/dev/null")
             .status == 0;
}
std::string as_nobody(const std::string& cmd) {
  return "env -u UNIFN_PLATFORM setpriv --reuid 65534 --regid 65534 --clear-groups " +
         cmd;  // auto, as a user has it
}
}  // namespace

TEST_CASE(
    "without KVM, --platform kvm refuses to start naming /dev/kvm, and auto falls back with a "
    "warning",
    "[sandbox]") {
  require_platform(unifn::vmm::PlatformKind::Sandbox,
                   "this test plays a host without KVM once, on the sandbox run");
  if (nobody_can_open_kvm())
    skip_test("user nobody may open /dev/kvm here, so it cannot play a host without KVM");
  TempDir dir;
  sh("cp " + std::string(UNIFN_FUNCTIONS_DIR) + "/hello.elf " + dir.str() + "/ && chmod -R a+rwX " +
     dir.str());
  const std::string unifnd = std::string(UNIFN_BUILD_DIR) + "/unifnd";
  const std::string in = dir.str() + "/in";
  sh("printf world > " + in + " && chmod a+r " + in);

  auto kvm = sh(as_nobody(unifnd + " run --platform kvm " + dir.str() + "/hello.elf --input " + in +
                          " 2>&1"));
  INFO(kvm.out);
  CHECK(kvm.status == 1);
  CHECK_THAT(kvm.out,
             Catch::Contains("the kvm platform cannot be used") && Catch::Contains("/dev/kvm"));

  auto fallback =
      sh(as_nobody(unifnd + " run " + dir.str() + "/hello.elf --input " + in + " 2>&1"));
  INFO(fallback.out);
  CHECK(fallback.status == 0);
  CHECK_THAT(fallback.out, Catch::Contains("Hello, world") &&
                               Catch::Contains("warning: KVM is not usable here") &&
                               Catch::Contains("sandbox platform") &&
                               Catch::Contains("weaker than a virtual machine"));

  auto daemon = sh(as_nobody(unifnd + " --platform kvm --listen 127.0.0.1:0 --state-dir " +
                             dir.str() + "/state 2>&1"));
  INFO(daemon.out);
  CHECK(daemon.status == 1);
  CHECK_THAT(daemon.out, Catch::Contains("/dev/kvm"));
}
