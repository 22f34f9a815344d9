// systemd's notify protocol (Type=notify): readiness, reloads, stopping, status text and the
// watchdog.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace unifn::systemd {

// Every message goes to $NOTIFY_SOCKET through sd_notify. When the daemon was not started by
// systemd (no NOTIFY_SOCKET) every call does nothing and succeeds; failures to send are reported
// through the return value only, never thrown: a daemon must not stop serving because its
// supervisor is unreachable.
class Notifier {
 public:
  // True when NOTIFY_SOCKET names a socket to talk to.
  bool enabled() const;

  // READY=1, with STATUS= when status is given.
  bool ready(std::string_view status = {});
  // RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC now), which systemd 253 and later require
  // for Type=notify-reload; send ready() when the reload is over.
  bool reloading();
  bool stopping();
  bool status(std::string_view text);
  bool watchdog();  // WATCHDOG=1

  // The interval systemd expects keep-alives in (WATCHDOG_USEC, when WATCHDOG_PID is unset or
  // ours); zero when the watchdog is off or there is no socket.
  std::chrono::microseconds watchdog_interval() const;

 private:
  bool send(const std::string& message);
};

// While it lives, a thread sends WATCHDOG=1 every half of the watchdog interval. It does nothing
// when the watchdog is off. The destructor stops and joins the thread promptly.
class Watchdog {
 public:
  explicit Watchdog(Notifier& notifier);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  bool running() const { return thread_.joinable(); }
  std::chrono::microseconds period() const { return period_; }

 private:
  Notifier& notifier_;
  std::chrono::microseconds period_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace unifn::systemd
