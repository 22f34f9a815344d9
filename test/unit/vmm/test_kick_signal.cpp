// The vCPU kick signal without /dev/kvm: it stops the thread's KVM_RUN (immediate_exit), and a
// system call it interrupts elsewhere on that thread, such as a blocked log write, is restarted
// rather than failing with EINTR (issue 10, item 1).
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>

#include "vmm/platform/kvm/kick_signal.h"

using namespace unifn::vmm;

TEST_CASE("a kick sets immediate_exit of the kvm_run its thread enters", "[kick]") {
  install_kick_handler();
  kvm_run run{};
  set_kick_target(&run);
  REQUIRE(::syscall(SYS_tgkill, ::getpid(), ::gettid(), kick_signal()) == 0);
  set_kick_target(nullptr);
  CHECK(run.immediate_exit == 1);
}

TEST_CASE("a kick that lands in a blocked read or write on the vCPU thread restarts it", "[kick]") {
  install_kick_handler();
  struct sigaction sa {};
  REQUIRE(sigaction(kick_signal(), nullptr, &sa) == 0);
  CHECK((sa.sa_flags & SA_RESTART) != 0);

  int p[2];
  REQUIRE(::pipe(p) == 0);
  std::atomic<int> tid{0};
  ssize_t got = 0;
  int err = 0;
  char byte = 0;
  std::thread reader([&] {
    tid = static_cast<int>(::gettid());
    got = ::read(p[0], &byte, 1);  // blocks until the byte below, through every kick
    err = errno;
  });
  while (tid.load() == 0) std::this_thread::yield();
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    REQUIRE(::syscall(SYS_tgkill, ::getpid(), tid.load(), kick_signal()) == 0);
  }
  REQUIRE(::write(p[1], "x", 1) == 1);
  reader.join();
  INFO("errno " << err);
  CHECK(got == 1);
  CHECK(byte == 'x');
  ::close(p[0]);
  ::close(p[1]);
}
