// The recent console lines of each function, for GET /system/logs: a bounded ring per function
// and the followers waiting for its next lines.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace unifn::http::provider {

struct LogLine {
  std::uint64_t seq = 0;  // increasing over every function's lines
  std::string name, instance;
  std::chrono::system_clock::time_point at;
  std::string text;
};

class LogRing {
 public:
  // Follower limit: past it, follow answers at once with what there is.
  LogRing(std::size_t lines_per_function = 1000, std::size_t max_followers = 256)
      : per_function_(lines_per_function), max_followers_(max_followers) {}

  // The daemon's: every function line its log gets (cli/daemon_command.cpp's function_line).
  static LogRing& global();

  // A line of function fn (instance: the call's id, or "-"); the oldest of fn's is dropped past
  // the bound. Never throws; the followers of fn are answered from here, outside the lock.
  void add(std::string_view fn, std::string_view instance, std::string_view text) noexcept;

  // fn's lines after seq `after`, written at or after since, the last `tail` of them when given.
  std::vector<LogLine> lines(const std::string& fn,
                             std::optional<std::chrono::system_clock::time_point> since,
                             std::optional<std::size_t> tail, std::uint64_t after = 0) const;
  // The seq of the last line added (of any function), 0 before any.
  std::uint64_t last_seq() const;

  // Calls ready with fn's next lines (after seq `after`) once there are some: at once when
  // there are already. Returns an id for forget(), or nullopt when too many follow already.
  using Ready = std::function<void(std::vector<LogLine>)>;
  std::optional<std::uint64_t> follow(const std::string& fn, std::uint64_t after, Ready ready);
  // The follower's client went away: it is not called.
  void forget(std::uint64_t id);
  // Every follower answered now with no lines (the daemon is stopping: a held request must not
  // keep its drain waiting).
  void release_all();

 private:
  struct Follower {
    std::string fn;
    std::uint64_t after;
    Ready ready;
  };
  const std::size_t per_function_, max_followers_;
  mutable std::mutex mu_;
  std::uint64_t seq_ = 0, next_follower_ = 0;
  std::map<std::string, std::deque<LogLine>, std::less<>> rings_;
  std::map<std::uint64_t, Follower> followers_;
};

}  // namespace unifn::http::provider
