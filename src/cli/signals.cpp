// Signals to a self-pipe: a handler in whichever thread the kernel picks, ppoll in the main thread.
#include "src/cli/signals.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace unifn::cli {

namespace {

int pipe_fds[2] = {-1, -1};  // the handler's only state: async-signal-safe to write

void on_signal(int sig) {
  const int saved = errno;
  const unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] auto n =
      write(pipe_fds[1], &b, 1);  // full pipe: that signal is already pending there
  errno = saved;
}

}  // namespace

SignalWaiter::SignalWaiter(std::initializer_list<int> signals) {
  if (pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0)
    throw std::system_error(errno, std::generic_category(), "creating the signal pipe");
  sigemptyset(&set_);
  for (int s : signals) sigaddset(&set_, s);
  pthread_sigmask(SIG_BLOCK, &set_, &old_mask_);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;  // other threads' system calls go on
  sigfillset(&sa.sa_mask);
  for (int s : signals) sigaction(s, &sa, nullptr);
}

SignalWaiter::~SignalWaiter() {
  for (int s = 1; s < NSIG; ++s)
    if (sigismember(&set_, s) == 1) signal(s, SIG_DFL);
  pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  pipe_fds[0] = pipe_fds[1] = -1;
}

int SignalWaiter::wait() {
  // This thread takes the signals only inside ppoll, so the threads it starts never do.
  sigset_t during;
  pthread_sigmask(SIG_SETMASK, nullptr, &during);
  for (int s = 1; s < NSIG; ++s)
    if (sigismember(&set_, s) == 1) sigdelset(&during, s);
  for (;;) {
    unsigned char b = 0;
    if (read(pipe_fds[0], &b, 1) == 1) return b;
    pollfd p{pipe_fds[0], POLLIN, 0};
    ppoll(&p, 1, nullptr, &during);  // EINTR when the handler ran here: the byte is in the pipe
  }
}

}  // namespace unifn::cli
