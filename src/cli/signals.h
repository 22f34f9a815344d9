// The daemon's SIGTERM/SIGINT/SIGHUP, taken by its main thread even when libraries started threads
// before main.
#pragma once

#include <signal.h>

#include <initializer_list>

namespace unifn::cli {

// OpenBLAS (and other libraries) start threads from their constructors, before main can block
// signals, so a process-directed signal may land on one of them. With the default disposition
// that kills the daemon (a SIGTERM right after a reload did). So the signals get a handler in
// every thread, which only writes the number to a pipe, and the main thread waits on the pipe.
// The signals are blocked in the constructing thread, and so in the threads it starts later
// (vCPU threads must not see them: KVM_RUN would return EINTR).
class SignalWaiter {
 public:
  explicit SignalWaiter(std::initializer_list<int> signals);
  ~SignalWaiter();  // default dispositions again
  SignalWaiter(const SignalWaiter&) = delete;
  SignalWaiter& operator=(const SignalWaiter&) = delete;

  // Blocks until one of the signals arrives; returns its number. Signals are not lost or merged
  // beyond what the kernel merges (one pending instance of each).
  int wait();

 private:
  sigset_t set_{};
  sigset_t old_mask_{};
};

}  // namespace unifn::cli
