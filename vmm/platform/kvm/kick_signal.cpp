// The vCPU kick signal: its number, its restartable handler, and the thread's kvm_run it stops.
#include "vmm/platform/kvm/kick_signal.h"

#include <signal.h>

#include <cerrno>
#include <mutex>
#include <system_error>

namespace unifn::vmm {

namespace {

thread_local kvm_run* t_running = nullptr;

void on_kick(int) {
  if (kvm_run* r = t_running) r->immediate_exit = 1;  // makes KVM_RUN return EINTR at once
}

}  // namespace

int kick_signal() { return SIGRTMIN + 2; }

void set_kick_target(kvm_run* run) { t_running = run; }

void install_kick_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = on_kick;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(kick_signal(), &sa, nullptr) != 0)
      throw std::system_error(errno, std::generic_category(),
                              "cannot install the vCPU kick signal's handler");
  });
}

}  // namespace unifn::vmm
