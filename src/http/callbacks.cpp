// The callback client: each result POSTed by a Beast asynchronous client on the callbacks' own
// thread, to an address the allow list (callbacks.allow) lets through; host names resolved on a
// few threads of their own, within a time bound.
#include <netdb.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <system_error>
#include <fmt/format.h>
#include <thread>

#include "src/http/calls.h"
#include "src/http/header.h"
#include "src/http/json.h"
#include "src/http/outcome_status.h"
#include "src/log/log.h"

namespace unifn::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

namespace {

using Clock = std::chrono::steady_clock;
using ResolveFn = std::function<std::vector<std::string>(const std::string&, std::string&)>;

// getaddrinfo for TCP; the addresses as text, in the resolver's order, without repeats.
std::vector<std::string> system_resolve(const std::string& host, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
  if (rc != 0) {
    error = rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc);
    return {};
  }
  std::vector<std::string> out;
  for (auto* ai = list; ai; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {};
    const void* where = nullptr;
    if (ai->ai_family == AF_INET)
      where = &reinterpret_cast<const sockaddr_in*>(ai->ai_addr)
                   ->sin_addr;  // Safe: AF_INET's sockaddr.
    else if (ai->ai_family == AF_INET6)
      where = &reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)
                   ->sin6_addr;  // Safe: AF_INET6's sockaddr.
    if (!where || !::inet_ntop(ai->ai_family, where, buf, sizeof buf)) continue;
    if (std::find(out.begin(), out.end(), buf) == out.end()) out.emplace_back(buf);
  }
  ::freeaddrinfo(list);
  if (out.empty()) error = "no IPv4 or IPv6 address";
  return out;
}

// Host names resolved on up to max_threads detached threads of their own: a resolver that never
// answers (getaddrinfo cannot be cancelled) holds one of them, never the callbacks' thread nor an
// I/O thread, and the delivery waiting for it gives up at its deadline. Lookups still queued past
// their deadline are skipped. Threads idle for a while end; close() drops what is queued, and a
// lookup under way at close() finishes on its thread without reporting.
class NameResolver {
 public:
  struct Answer {
    std::vector<std::string> addresses;
    std::string error;
  };
  // Called on a resolver thread with the resolver's lock held: it must only hand the answer on.
  using Done = std::function<void(Answer)>;

  NameResolver(unsigned max_threads, ResolveFn fn) : s_(std::make_shared<Shared>()) {
    s_->max_threads = std::max(1u, max_threads);
    s_->fn = fn ? std::move(fn) : ResolveFn(system_resolve);
  }
  ~NameResolver() { close(); }

  void resolve(std::string host, Clock::time_point deadline, Done done) {
    std::lock_guard lock(s_->mu);
    if (s_->closed) return;
    s_->queue.push_back(Job{std::move(host), deadline, std::move(done)});
    if (s_->queue.size() > s_->idle && s_->threads < s_->max_threads) {
      ++s_->threads;
      try {
        std::thread(work, s_).detach();
      } catch (const std::system_error&) {
        // No thread to be had now: the lookup waits for one that exists, or its deadline.
        --s_->threads;
        s_->cv.notify_one();
      }
    } else {
      s_->cv.notify_one();
    }
  }

  void close() {
    std::lock_guard lock(s_->mu);
    s_->closed = true;
    s_->queue.clear();
    s_->cv.notify_all();
  }

 private:
  struct Job {
    std::string host;
    Clock::time_point deadline;
    Done done;
  };
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Job> queue;
    unsigned threads = 0, idle = 0, max_threads = 1;
    bool closed = false;
    ResolveFn fn;
  };

  static void work(std::shared_ptr<Shared> s) {
    std::unique_lock lock(s->mu);
    for (;;) {
      ++s->idle;
      const bool got = s->cv.wait_for(lock, std::chrono::seconds(30),
                                      [&] { return s->closed || !s->queue.empty(); });
      --s->idle;
      if (s->closed || !got) break;
      Job job = std::move(s->queue.front());
      s->queue.pop_front();
      if (Clock::now() >= job.deadline) continue;  // its delivery has given up already
      lock.unlock();
      Answer a;
      try {
        a.addresses = s->fn(job.host, a.error);
      } catch (const std::exception& e) {
        a.addresses.clear();
        a.error = e.what();
      }
      lock.lock();
      if (!s->closed) job.done(std::move(a));
    }
    --s->threads;
  }

  std::shared_ptr<Shared> s_;
};

}  // namespace

struct Callbacks::Impl {
  explicit Impl(Options o)
      : opts(std::move(o)),
        policy(std::make_shared<const CallbackPolicy>(opts.policy)),
        resolver(opts.resolver_threads, opts.resolve) {
    thread = std::thread([this] { ioc.run(); });
  }
  ~Impl() {
    {
      std::unique_lock lock(mu);
      cv.wait_for(lock, opts.timeout, [this] { return pending == 0; });
      if (pending > 0)
        log(fmt::format("unifnd: {} callbacks still under way at shutdown were abandoned",
                        pending));
    }
    resolver.close();  // before the io_context goes: lookups under way must not post to it
    work.reset();
    ioc.stop();
    thread.join();
  }
  void log(const std::string& line) {
    if (opts.log)
      opts.log(line);
    else
      log::warning("{}", line);  // every line here is a callback that failed or was dropped
  }
  void finished(bool ok) {
    (ok ? delivered : failed).fetch_add(1);
    std::lock_guard lock(mu);
    --pending;
    cv.notify_all();
  }
  std::shared_ptr<const CallbackPolicy> current_policy() {
    std::lock_guard lock(policy_mu);
    return policy;
  }

  Options opts;
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  std::size_t pending = 0;
  std::atomic<std::uint64_t> delivered{0}, failed{0};
  std::mutex policy_mu;
  std::shared_ptr<const CallbackPolicy> policy;
  NameResolver resolver;
};

namespace {

tcp::endpoint endpoint_of(const IpAddress& a, unsigned short port) {
  if (a.v4) return {asio::ip::address_v4(a.v4_value()), port};
  return {asio::ip::address_v6(a.bytes), port};
}

// One result to deliver: resolve (a name) and check the addresses, connect to those that passed,
// write, read the answer; once more after a pause if that failed, to the same checked addresses.
// The lookup has its own deadline (resolve_timeout); connecting, sending and reading share one
// (tcp_stream's timer, timeout).
class Delivery : public std::enable_shared_from_this<Delivery> {
 public:
  Delivery(Callbacks::Impl& impl, std::string url, CallbackUrl where, std::string call_id,
           runtime::InvocationResult result, Callbacks::Outcome outcome)
      : impl_(impl),
        url_(std::move(url)),
        where_(std::move(where)),
        call_id_(std::move(call_id)),
        outcome_(std::move(outcome)),
        resolve_timer_(impl.ioc),
        retry_(impl.ioc) {
    // A content type that cannot be a header (CR, LF, other control bytes) is never sent: the
    // receiver gets the 502 the caller of a synchronous call would, with the reason.
    refuse_bad_content_type(result);
    // Every header through set_field (http/header.h). The URL's host, port and target hold no
    // control bytes (CallbackUrl::parse refuses them) and the call id is a valid_call_id.
    req_ = {bhttp::verb::post, where_.target, 11};
    set_field(req_, bhttp::field::host,
              where_.port == "80" ? host_for_header() : host_for_header() + ":" + where_.port);
    set_field(req_, bhttp::field::user_agent, "unifnd");
    set_field(req_, "X-Call-Id", call_id_);
    set_field(req_, "X-Function-Status", std::to_string(status_of(result)));
    set_field(req_, "X-Duration-Seconds",
              fmt::format("{:.6f}", std::chrono::duration<double>(result.duration).count()));
    if (result.answered()) {
      if (!result.content_type.empty())
        set_field(req_, bhttp::field::content_type, result.content_type);
      req_.body() = std::move(result.body);
    } else {
      set_field(req_, bhttp::field::content_type, "application/json");
      req_.body() = json_error_text(result.error) + "\n";
    }
    req_.keep_alive(false);
    req_.prepare_payload();
  }

  void start() {
    if (!endpoints_.empty()) return connect();  // a retry: the addresses checked the first time
    if (auto literal = IpAddress::parse(where_.host)) return check({literal->str()}, false);
    // A name: looked up on a resolver thread; whichever of the answer and the deadline comes
    // first decides this attempt, and a late answer is ignored.
    resolving_ = true;
    const auto deadline = Clock::now() + impl_.opts.resolve_timeout;
    resolve_timer_.expires_at(deadline);
    resolve_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || !self->resolving_) return;
      self->resolving_ = false;
      self->failed(fmt::format("cannot resolve {}: no answer within {} ms", self->where_.host,
                               self->impl_.opts.resolve_timeout.count()));
    });
    impl_.resolver.resolve(
        where_.host, deadline,
        [weak = weak_from_this(), attempt = attempt_, &ioc = impl_.ioc](NameResolver::Answer a) {
          asio::post(ioc, [weak, attempt, a = std::move(a)]() mutable {
            if (auto self = weak.lock()) self->resolved(attempt, std::move(a));
          });
        });
  }

 private:
  std::string host_for_header() const {
    return where_.host.find(':') != std::string::npos ? "[" + where_.host + "]" : where_.host;
  }

  void resolved(int attempt, NameResolver::Answer a) {
    if (!resolving_ || attempt != attempt_) return;
    resolving_ = false;
    resolve_timer_.cancel();
    if (!a.error.empty()) return failed(fmt::format("cannot resolve {}: {}", where_.host, a.error));
    check(a.addresses, true);
  }

  // Keeps the addresses the policy lets through; the connection goes to those and no others.
  void check(const std::vector<std::string>& addresses, bool resolved) {
    auto policy = impl_.current_policy();
    const auto port = static_cast<unsigned short>(std::stoul(where_.port));
    std::string why;
    for (const auto& text : addresses) {
      auto a = IpAddress::parse(text);
      if (!a) {
        if (why.empty())
          why = fmt::format("the resolver answered '{}', which is not an address", text);
        continue;
      }
      if (auto refused = policy->refuses(*a)) {
        if (why.empty()) why = *refused;
        continue;
      }
      endpoints_.push_back(endpoint_of(*a, port));
    }
    if (endpoints_.empty()) {
      if (resolved)
        why = fmt::format("{} resolves only to refused addresses: {}", where_.host, why);
      return refused(why);
    }
    connect();
  }

  void connect() {
    stream_.emplace(impl_.ioc);
    stream_->expires_after(impl_.opts.timeout);
    stream_->async_connect(endpoints_,
                           [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
                             if (ec) return self->failed("cannot connect: " + ec.message());
                             self->write();
                           });
  }

  void write() {
    bhttp::async_write(
        *stream_, req_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
          if (ec) return self->failed("cannot send: " + ec.message());
          self->res_.emplace();
          self->res_->body_limit(64 * 1024);  // only the status matters
          bhttp::async_read(
              *self->stream_, self->buffer_, *self->res_,
              [self](beast::error_code ec, std::size_t) {
                if (ec) return self->failed("no answer: " + ec.message());
                beast::error_code ignored;
                self->stream_->socket().shutdown(tcp::socket::shutdown_both, ignored);
                unsigned status = self->res_->get().result_int();
                if (status / 100 != 2)
                  return self->failed(fmt::format("the receiver answered {}", status));
                self->tell("delivered");
                self->impl_.finished(true);
              });
        });
  }

  // Not retried: the policy would answer the same.
  void refused(const std::string& why) {
    impl_.log(fmt::format("unifnd: callback for call {} to {} refused: {}", call_id_, url_, why));
    tell("refused: " + why);
    impl_.finished(false);
  }

  void failed(const std::string& why) {
    if (stream_) stream_->close();
    if (attempt_++ == 0) {
      retry_.expires_after(impl_.opts.retry_delay);
      retry_.async_wait([self = shared_from_this(), why](beast::error_code ec) {
        if (ec) {
          self->tell("failed: " + why);
          return self->impl_.finished(false);
        }
        self->buffer_.clear();
        self->start();
      });
      return;
    }
    impl_.log(fmt::format("unifnd: callback for call {} to {} failed after 2 attempts: {}",
                          call_id_, url_, why));
    tell("failed: " + why);
    impl_.finished(false);
  }

  void tell(std::string what) {
    if (!outcome_) return;
    try {
      outcome_(std::move(what));
    } catch (const std::exception& e) {
      impl_.log(fmt::format("unifnd: callback for call {}: recording its outcome failed: {}",
                            call_id_, e.what()));
    }
    outcome_ = nullptr;
  }

  Callbacks::Impl& impl_;
  std::string url_;
  CallbackUrl where_;
  std::string call_id_;
  Callbacks::Outcome outcome_;
  asio::steady_timer resolve_timer_;
  bool resolving_ = false;
  std::vector<tcp::endpoint> endpoints_;  // the checked addresses: every attempt connects to these
  std::optional<beast::tcp_stream> stream_;
  asio::steady_timer retry_;
  bhttp::request<bhttp::string_body> req_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::response_parser<bhttp::string_body>> res_;
  int attempt_ = 0;
};

}  // namespace

Callbacks::Callbacks() : Callbacks(Options{}) {}

Callbacks::Callbacks(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Callbacks::~Callbacks() = default;

void Callbacks::post(std::string url, std::string call_id, runtime::InvocationResult result,
                     Outcome outcome) {
  auto where = CallbackUrl::parse(url);
  if (!where) {
    impl_->log(
        fmt::format("unifnd: callback for call {}: '{}' is not an http:// URL", call_id, url));
    impl_->failed.fetch_add(1);
    if (outcome) outcome("failed: not an http:// URL");
    return;
  }
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->pending >= impl_->opts.max_pending) {
      impl_->failed.fetch_add(1);
      impl_->log(
          fmt::format("unifnd: callback for call {} to {} dropped: {} callbacks already under way",
                      call_id, url, impl_->pending));
      if (outcome)
        outcome(
            fmt::format("failed: dropped, {} callbacks were already under way", impl_->pending));
      return;
    }
    ++impl_->pending;
  }
  auto d = std::make_shared<Delivery>(*impl_, std::move(url), std::move(*where), std::move(call_id),
                                      std::move(result), std::move(outcome));
  asio::post(impl_->ioc, [d] { d->start(); });
}

std::optional<std::string> Callbacks::refused_literal(std::string_view url) const {
  auto where = CallbackUrl::parse(url);
  if (!where) return std::nullopt;
  return impl_->current_policy()->refuses_host(where->host);
}

void Callbacks::set_policy(CallbackPolicy policy) {
  auto p = std::make_shared<const CallbackPolicy>(std::move(policy));
  std::lock_guard lock(impl_->policy_mu);
  impl_->policy = std::move(p);
}

std::size_t Callbacks::pending() const {
  std::lock_guard lock(impl_->mu);
  return impl_->pending;
}

std::uint64_t Callbacks::delivered() const { return impl_->delivered.load(); }

std::uint64_t Callbacks::failed() const { return impl_->failed.load(); }

}  // namespace unifn::http
