// The async call store and the callback client (Beast, synchronous on its own thread).
#include "http/calls.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <regex>

#include "http/api.h"

namespace unifn::http {

namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = boost::asio::ip::tcp;

namespace {
const std::regex kUrl(R"(http://([A-Za-z0-9.\-]+|\[[0-9a-fA-F:]+\])(?::([0-9]{1,5}))?(/[^\s]*)?)");
}

std::string base64(std::string_view in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
  }
  if (i + 1 == in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += {t[v >> 18], t[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
  }
  return out;
}

void CallStore::evict(std::chrono::steady_clock::time_point now) {
  // Expired results go first, then the oldest finished calls while over the bound.
  while (!order_.empty()) {
    auto it = calls_.find(order_.front());
    if (it == calls_.end()) {
      order_.pop_front();
      continue;
    }
    bool expired = it->second.done && now - it->second.finished > ttl_;
    bool over = calls_.size() > max_ && it->second.done;
    if (!expired && !over) break;
    calls_.erase(it);
    order_.pop_front();
  }
}

void CallStore::add(const std::string& id, const std::string& function) {
  std::lock_guard lock(mu_);
  auto now = std::chrono::steady_clock::now();
  calls_[id] = CallRecord{id, function, false, {}, now, {}};
  order_.push_back(id);
  evict(now);
}

void CallStore::finish(const std::string& id, runtime::InvocationResult result) {
  std::lock_guard lock(mu_);
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  it->second.done = true;
  it->second.result = std::move(result);
  it->second.finished = std::chrono::steady_clock::now();
  evict(it->second.finished);
}

std::optional<CallRecord> CallStore::get(const std::string& id) {
  std::lock_guard lock(mu_);
  evict(std::chrono::steady_clock::now());
  auto it = calls_.find(id);
  if (it == calls_.end()) return std::nullopt;
  return it->second;
}

Callbacks::Callbacks() : thread_([this] { run(); }) {}

Callbacks::~Callbacks() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool Callbacks::valid_url(const std::string& url) {
  std::smatch m;
  return std::regex_match(url, m, kUrl) && (!m[2].matched || std::stoul(m[2]) <= 65535);
}

void Callbacks::post(std::string url, std::string call_id, runtime::InvocationResult result) {
  {
    std::lock_guard lock(mu_);
    if (jobs_.size() >= 10000) return;  // a dead receiver must not grow this without bound
    jobs_.push_back(Job{std::move(url), std::move(call_id), std::move(result)});
  }
  cv_.notify_one();
}

void Callbacks::run() {
  boost::asio::io_context ioc;
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    std::smatch m;
    if (!std::regex_match(job.url, m, kUrl)) continue;
    std::string host = m[1], port = m[2].matched ? std::string(m[2]) : "80", target = m[3].matched ? std::string(m[3]) : "/";
    if (host.front() == '[') host = host.substr(1, host.size() - 2);
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        beast::tcp_stream stream(ioc);
        stream.expires_after(std::chrono::seconds(5));
        tcp::resolver resolver(ioc);
        stream.connect(resolver.resolve(host, port));
        bhttp::request<bhttp::string_body> req{bhttp::verb::post, target, 11};
        req.set(bhttp::field::host, host);
        req.set("X-Call-Id", job.call_id);
        req.set("X-Function-Status", std::to_string(job.result.status));
        req.set("X-Duration-Seconds", fmt::format("{:.6f}", std::chrono::duration<double>(job.result.duration).count()));
        req.set(bhttp::field::content_type, job.result.error.empty() ? job.result.content_type : "application/json");
        req.body() = job.result.error.empty() ? job.result.body : fmt::format("{{\"error\":\"{}\"}}", json_escape(job.result.error));
        req.prepare_payload();
        bhttp::write(stream, req);
        beast::flat_buffer buf;
        bhttp::response<bhttp::string_body> res;
        bhttp::read(stream, buf, res);
        beast::error_code ec;
        stream.socket().shutdown(tcp::socket::shutdown_both, ec);
        break;
      } catch (const std::exception& e) {
        if (attempt == 1) fmt::print(stderr, "unifnd: callback for call {} to {} failed: {}\n", job.call_id, job.url, e.what());
      }
    }
  }
}

}  // namespace unifn::http
