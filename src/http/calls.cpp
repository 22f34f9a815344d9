// The async call store and the parsing of callback URLs.
#include "src/http/calls.h"

#include <algorithm>

#include <fmt/format.h>

namespace unifn::http {

std::string_view to_string(CallState state) {
  switch (state) {
    case CallState::Queued:
      return "queued";
    case CallState::Running:
      return "running";
    case CallState::Done:
      return "done";
  }
  return "queued";
}

std::size_t CallStore::cost(const CallRecord& r) {
  // The id twice: the record's key, and its place in finished_.
  return sizeof(CallRecord) + 2 * r.id.size() + r.function.size() + r.callback.size() +
         r.result.body.size() + r.result.content_type.size() + r.result.error.size();
}

void CallStore::evict_oldest_finished() {
  if (auto it = calls_.find(finished_.front()); it != calls_.end()) {
    bytes_ -= cost(it->second);
    calls_.erase(it);
  }
  finished_.pop_front();
}

void CallStore::evict_expired(std::chrono::steady_clock::time_point now) {
  // finished_ is in finishing order, so the expired ones are at its front.
  while (!finished_.empty()) {
    auto it = calls_.find(finished_.front());
    if (it != calls_.end() && now - it->second.finished <= ttl_) break;
    evict_oldest_finished();
  }
}

CallStore::Added CallStore::add(const std::string& id, const std::string& function) {
  std::lock_guard lock(mu_);
  auto now = std::chrono::steady_clock::now();
  evict_expired(now);
  if (calls_.contains(id)) return Added::Duplicate;
  CallRecord r;
  r.id = id;
  r.function = function;
  r.created = now;
  const std::size_t need = cost(r);
  auto fits = [&] { return bytes_ <= max_bytes_ && need <= max_bytes_ - bytes_; };
  while ((calls_.size() >= max_ || !fits()) && !finished_.empty()) evict_oldest_finished();
  if (calls_.size() >= max_) return Added::Full;
  if (!fits()) return Added::NoRoom;
  bytes_ += need;
  calls_.emplace(id, std::move(r));
  return Added::Ok;
}

void CallStore::set_running(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = calls_.find(id);
  if (it != calls_.end() && it->second.state == CallState::Queued)
    it->second.state = CallState::Running;
}

void CallStore::finish(const std::string& id, runtime::InvocationResult result) {
  std::lock_guard lock(mu_);
  auto it = calls_.find(id);
  if (it == calls_.end() || it->second.state == CallState::Done) return;
  auto& rec = it->second;
  bytes_ -= cost(rec);
  rec.state = CallState::Done;
  rec.result = std::move(result);
  rec.finished = std::chrono::steady_clock::now();
  // Older results make room for this one, oldest first.
  while (bytes_ + cost(rec) > max_bytes_ && !finished_.empty()) evict_oldest_finished();
  if (bytes_ + cost(rec) > max_bytes_) {
    const std::size_t size = rec.result.body.size();
    rec.result.outcome = runtime::CallOutcome::NotKept;
    rec.result.error = fmt::format(
        "the result ({} bytes) does not fit in the async results' budget of {} bytes "
        "(limits.async_results_max_bytes), "
        "{} of which calls not yet finished hold",
        size, max_bytes_, bytes_);
    rec.result.content_type.clear();
    rec.result.body.clear();
    rec.result.body.shrink_to_fit();
  }
  bytes_ += cost(rec);
  finished_.push_back(id);
}

void CallStore::set_callback(const std::string& id, std::string outcome) {
  std::lock_guard lock(mu_);
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  bytes_ -= cost(it->second);
  it->second.callback = std::move(outcome);
  bytes_ += cost(it->second);  // a few bytes over the budget at most: an outcome is a sentence
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

std::size_t CallStore::bytes() {
  std::lock_guard lock(mu_);
  evict_expired(std::chrono::steady_clock::now());
  return bytes_;
}

std::optional<CallbackUrl> CallbackUrl::parse(std::string_view url) {
  constexpr std::string_view scheme = "http://";
  if (url.size() < scheme.size() || !std::equal(scheme.begin(), scheme.end(), url.begin(),
                                                [](char a, char b) { return a == (b | 0x20); }))
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
    if (host.empty() ||
        host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos)
      return std::nullopt;
  } else {
    if (auto colon = authority.find(':'); colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
      if (port.empty()) return std::nullopt;
    }
    if (host.empty() || host.find_first_not_of(
                            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") !=
                            std::string_view::npos)
      return std::nullopt;
  }
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos)
      return std::nullopt;
    unsigned long p = std::stoul(std::string(port));
    if (p == 0 || p > 65535) return std::nullopt;
  }
  out.host = host;
  out.port = port.empty() ? "80" : std::string(port);
  return out;
}

}  // namespace unifn::http
