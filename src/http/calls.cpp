// The async call store and the parsing of callback URLs.
#include "http/calls.h"

#include <algorithm>

namespace unifn::http {

std::string_view to_string(CallState state) {
  switch (state) {
    case CallState::Queued: return "queued";
    case CallState::Running: return "running";
    case CallState::Done: return "done";
  }
  return "queued";
}

void CallStore::evict_expired(std::chrono::steady_clock::time_point now) {
  // finished_ is in finishing order, so the expired ones are at its front.
  while (!finished_.empty()) {
    auto it = calls_.find(finished_.front());
    if (it != calls_.end() && now - it->second.finished <= ttl_) break;
    if (it != calls_.end()) calls_.erase(it);
    finished_.pop_front();
  }
}

CallStore::Added CallStore::add(const std::string& id, const std::string& function) {
  std::lock_guard lock(mu_);
  auto now = std::chrono::steady_clock::now();
  evict_expired(now);
  if (calls_.contains(id)) return Added::Duplicate;
  while (calls_.size() >= max_ && !finished_.empty()) {
    calls_.erase(finished_.front());
    finished_.pop_front();
  }
  if (calls_.size() >= max_) return Added::Full;
  CallRecord r;
  r.id = id;
  r.function = function;
  r.created = now;
  calls_.emplace(id, std::move(r));
  return Added::Ok;
}

void CallStore::set_running(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = calls_.find(id);
  if (it != calls_.end() && it->second.state == CallState::Queued) it->second.state = CallState::Running;
}

void CallStore::finish(const std::string& id, runtime::InvocationResult result) {
  std::lock_guard lock(mu_);
  auto it = calls_.find(id);
  if (it == calls_.end() || it->second.state == CallState::Done) return;
  it->second.state = CallState::Done;
  it->second.result = std::move(result);
  it->second.finished = std::chrono::steady_clock::now();
  finished_.push_back(id);
}

void CallStore::set_callback(const std::string& id, std::string outcome) {
  std::lock_guard lock(mu_);
  auto it = calls_.find(id);
  if (it != calls_.end()) it->second.callback = std::move(outcome);
}

std::optional<CallRecord> CallStore::get(const std::string& id) {
  std::lock_guard lock(mu_);
  evict_expired(std::chrono::steady_clock::now());
  auto it = calls_.find(id);
  if (it == calls_.end()) return std::nullopt;
  return it->second;
}

std::size_t CallStore::size() {
  std::lock_guard lock(mu_);
  evict_expired(std::chrono::steady_clock::now());
  return calls_.size();
}

std::optional<CallbackUrl> CallbackUrl::parse(std::string_view url) {
  constexpr std::string_view scheme = "http://";
  if (url.size() < scheme.size() ||
      !std::equal(scheme.begin(), scheme.end(), url.begin(), [](char a, char b) { return a == (b | 0x20); }))
    return std::nullopt;
  url.remove_prefix(scheme.size());
  if (auto hash = url.find('#'); hash != std::string_view::npos) url = url.substr(0, hash);
  for (char c : url)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F) return std::nullopt;
  auto end = url.find_first_of("/?");
  std::string_view authority = url.substr(0, end);
  CallbackUrl out;
  out.target = end == std::string_view::npos ? "/" : std::string(url.substr(end));
  if (out.target.front() == '?') out.target.insert(0, "/");
  if (authority.find('@') != std::string_view::npos) return std::nullopt;  // no credentials in URLs
  std::string_view host = authority, port;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = authority.substr(1, close - 1);
    auto rest = authority.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return std::nullopt;
    if (!rest.empty()) {
      port = rest.substr(1);
      if (port.empty()) return std::nullopt;
    }
    if (host.empty() || host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos)
      return std::nullopt;
  } else {
    if (auto colon = authority.find(':'); colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
      if (port.empty()) return std::nullopt;
    }
    if (host.empty() ||
        host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") !=
            std::string_view::npos)
      return std::nullopt;
  }
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
    unsigned long p = std::stoul(std::string(port));
    if (p == 0 || p > 65535) return std::nullopt;
  }
  out.host = host;
  out.port = port.empty() ? "80" : std::string(port);
  return out;
}

}  // namespace unifn::http
