// Bounded per-function console rings and their followers.
#include "src/http/provider/log_ring.h"

#include <algorithm>

namespace unifn::http::provider {

namespace {
// A console line is bounded already (64 KiB a write); a log message is kept shorter.
constexpr std::size_t kMaxText = 4096;

std::vector<LogLine> after_seq(const std::deque<LogLine>& ring, std::uint64_t after) {
  std::vector<LogLine> out;
  for (const auto& l : ring)
    if (l.seq > after) out.push_back(l);
  return out;
}
}  // namespace

LogRing& LogRing::global() {
  static LogRing ring;
  return ring;
}

void LogRing::add(std::string_view fn, std::string_view instance, std::string_view text) noexcept {
  try {
    std::vector<std::pair<Ready, std::vector<LogLine>>> due;
    {
      std::lock_guard lock(mu_);
      auto it = rings_.find(fn);
      if (it == rings_.end()) it = rings_.emplace(std::string(fn), std::deque<LogLine>()).first;
      auto& ring = it->second;
      ring.push_back(LogLine{++seq_, std::string(fn), std::string(instance),
                             std::chrono::system_clock::now(),
                             std::string(text.substr(0, kMaxText))});
      while (ring.size() > per_function_) ring.pop_front();
      for (auto f = followers_.begin(); f != followers_.end();) {
        if (f->second.fn == fn) {
          due.emplace_back(std::move(f->second.ready), after_seq(ring, f->second.after));
          f = followers_.erase(f);
        } else {
          ++f;
        }
      }
    }
    for (auto& [ready, lines] : due) ready(std::move(lines));
  } catch (...) {
    // A line that cannot be kept (no memory) is lost from the ring; the daemon's log has it.
  }
}

std::vector<LogLine> LogRing::lines(const std::string& fn,
                                    std::optional<std::chrono::system_clock::time_point> since,
                                    std::optional<std::size_t> tail, std::uint64_t after) const {
  std::vector<LogLine> out;
  {
    std::lock_guard lock(mu_);
    auto it = rings_.find(fn);
    if (it == rings_.end()) return out;
    for (const auto& l : it->second)
      if (l.seq > after && (!since || l.at >= *since)) out.push_back(l);
  }
  if (tail && out.size() > *tail)
    out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(*tail));
  return out;
}

std::uint64_t LogRing::last_seq() const {
  std::lock_guard lock(mu_);
  return seq_;
}

std::optional<std::uint64_t> LogRing::follow(const std::string& fn, std::uint64_t after,
                                             Ready ready) {
  std::vector<LogLine> now;
  {
    std::lock_guard lock(mu_);
    if (auto it = rings_.find(fn); it != rings_.end()) now = after_seq(it->second, after);
    if (now.empty()) {
      if (followers_.size() >= max_followers_) return std::nullopt;
      const auto id = ++next_follower_;
      followers_.emplace(id, Follower{fn, after, std::move(ready)});
      return id;
    }
  }
  ready(std::move(now));
  return 0;
}

void LogRing::forget(std::uint64_t id) {
  std::lock_guard lock(mu_);
  followers_.erase(id);
}

void LogRing::release_all() {
  std::map<std::uint64_t, Follower> all;
  {
    std::lock_guard lock(mu_);
    all.swap(followers_);
  }
  for (auto& [id, f] : all) f.ready({});
}

}  // namespace unifn::http::provider
