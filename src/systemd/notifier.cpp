// sd_notify messages and the watchdog keep-alive thread.
#include "src/systemd/notifier.h"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdlib>
#include <fmt/format.h>

namespace unifn::systemd {

namespace {

// A newline inside STATUS= would start another assignment that systemd would obey.
std::string one_line(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c == '\n' || c == '\r') c = ' ';
  return out;
}

std::uint64_t monotonic_usec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace

bool Notifier::enabled() const {
  const char* s = std::getenv("NOTIFY_SOCKET");
  return s != nullptr && *s != '\0';
}

bool Notifier::send(const std::string& message) {
  if (!enabled()) return true;
  return sd_notify(0, message.c_str()) > 0;
}

bool Notifier::ready(std::string_view status) {
  return send(status.empty() ? std::string("READY=1") : "READY=1\nSTATUS=" + one_line(status));
}

bool Notifier::reloading() {
  return send(fmt::format("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
}

bool Notifier::stopping() { return send("STOPPING=1"); }

bool Notifier::status(std::string_view text) { return send("STATUS=" + one_line(text)); }

bool Notifier::watchdog() { return send("WATCHDOG=1"); }

std::chrono::microseconds Notifier::watchdog_interval() const {
  std::uint64_t usec = 0;
  if (!enabled() || sd_watchdog_enabled(0, &usec) <= 0) return std::chrono::microseconds(0);
  return std::chrono::microseconds(usec);
}

Watchdog::Watchdog(Notifier& notifier) : notifier_(notifier) {
  auto interval = notifier_.watchdog_interval();
  if (interval.count() == 0) return;
  period_ = interval / 2;
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    // The first keep-alive goes at once: the interval may have started well before we did.
    do {
      lock.unlock();
      notifier_.watchdog();
      lock.lock();
    } while (!cv_.wait_for(lock, period_, [this] { return stop_; }));
  });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace unifn::systemd
