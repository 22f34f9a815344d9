// The callback client: each result POSTed by a Beast asynchronous client on the callbacks' own thread.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <fmt/format.h>
#include <thread>

#include "http/calls.h"
#include "http/header.h"
#include "http/json.h"

namespace unifn::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

struct Callbacks::Impl {
  explicit Impl(Options o) : opts(std::move(o)) {
    thread = std::thread([this] { ioc.run(); });
  }
  ~Impl() {
    {
      std::unique_lock lock(mu);
      cv.wait_for(lock, opts.timeout, [this] { return pending == 0; });
      if (pending > 0) log(fmt::format("unifnd: {} callbacks still under way at shutdown were abandoned", pending));
    }
    work.reset();
    ioc.stop();
    thread.join();
  }
  void log(const std::string& line) {
    if (opts.log) opts.log(line);
    else fmt::print(stderr, "{}\n", line);
  }
  void finished(bool ok) {
    (ok ? delivered : failed).fetch_add(1);
    std::lock_guard lock(mu);
    --pending;
    cv.notify_all();
  }

  Options opts;
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  std::size_t pending = 0;
  std::atomic<std::uint64_t> delivered{0}, failed{0};
};

namespace {

// One result to deliver: resolve, connect, write, read the answer; once more after a pause if
// that failed. Every step of an attempt shares one deadline (tcp_stream's timer).
class Delivery : public std::enable_shared_from_this<Delivery> {
 public:
  Delivery(Callbacks::Impl& impl, std::string url, CallbackUrl where, std::string call_id,
           runtime::InvocationResult result)
      : impl_(impl), url_(std::move(url)), where_(std::move(where)), call_id_(std::move(call_id)),
        resolver_(impl.ioc), retry_(impl.ioc) {
    // A content type that cannot be a header (CR, LF, other control bytes) is never sent: the
    // receiver gets the 502 the caller of a synchronous call would, with the reason.
    if (result.error.empty())
      if (auto why = field_value_problem(result.content_type)) {
        result.status = 502;
        result.error = fmt::format("the function answered with a content type holding control bytes ({})", *why);
        result.content_type.clear();
        result.body.clear();
      }
    // Every header through set_field (http/header.h). The URL's host, port and target hold no
    // control bytes (CallbackUrl::parse refuses them) and the call id is a valid_call_id.
    req_ = {bhttp::verb::post, where_.target, 11};
    set_field(req_, bhttp::field::host, where_.port == "80" ? host_for_header() : host_for_header() + ":" + where_.port);
    set_field(req_, bhttp::field::user_agent, "unifnd");
    set_field(req_, "X-Call-Id", call_id_);
    set_field(req_, "X-Function-Status", std::to_string(result.status));
    set_field(req_, "X-Duration-Seconds", fmt::format("{:.6f}", std::chrono::duration<double>(result.duration).count()));
    if (result.error.empty()) {
      if (!result.content_type.empty()) set_field(req_, bhttp::field::content_type, result.content_type);
      req_.body() = std::move(result.body);
    } else {
      set_field(req_, bhttp::field::content_type, "application/json");
      req_.body() = "{\"error\":" + json_quote(result.error) + "}\n";
    }
    req_.keep_alive(false);
    req_.prepare_payload();
  }

  void start() {
    stream_.emplace(impl_.ioc);
    resolver_.async_resolve(where_.host, where_.port,
                            [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type r) {
                              if (ec) return self->failed("cannot resolve " + self->where_.host + ": " + ec.message());
                              self->stream_->expires_after(self->impl_.opts.timeout);
                              self->stream_->async_connect(r, [self](beast::error_code ec, const tcp::endpoint&) {
                                if (ec) return self->failed("cannot connect: " + ec.message());
                                self->write();
                              });
                            });
  }

 private:
  std::string host_for_header() const {
    return where_.host.find(':') != std::string::npos ? "[" + where_.host + "]" : where_.host;
  }

  void write() {
    bhttp::async_write(*stream_, req_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->failed("cannot send: " + ec.message());
      self->res_.emplace();
      self->res_->body_limit(64 * 1024);  // only the status matters
      bhttp::async_read(*self->stream_, self->buffer_, *self->res_, [self](beast::error_code ec, std::size_t) {
        if (ec) return self->failed("no answer: " + ec.message());
        beast::error_code ignored;
        self->stream_->socket().shutdown(tcp::socket::shutdown_both, ignored);
        unsigned status = self->res_->get().result_int();
        if (status / 100 != 2) return self->failed(fmt::format("the receiver answered {}", status));
        self->impl_.finished(true);
      });
    });
  }

  void failed(const std::string& why) {
    stream_->close();
    if (attempt_++ == 0) {
      retry_.expires_after(impl_.opts.retry_delay);
      retry_.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (ec) return self->impl_.finished(false);
        self->buffer_.clear();
        self->start();
      });
      return;
    }
    impl_.log(fmt::format("unifnd: callback for call {} to {} failed after 2 attempts: {}", call_id_, url_, why));
    impl_.finished(false);
  }

  Callbacks::Impl& impl_;
  std::string url_;
  CallbackUrl where_;
  std::string call_id_;
  tcp::resolver resolver_;
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

void Callbacks::post(std::string url, std::string call_id, runtime::InvocationResult result) {
  auto where = CallbackUrl::parse(url);
  if (!where) {
    impl_->log(fmt::format("unifnd: callback for call {}: '{}' is not an http:// URL", call_id, url));
    impl_->failed.fetch_add(1);
    return;
  }
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->pending >= impl_->opts.max_pending) {
      impl_->failed.fetch_add(1);
      impl_->log(fmt::format("unifnd: callback for call {} to {} dropped: {} callbacks already under way", call_id,
                             url, impl_->pending));
      return;
    }
    ++impl_->pending;
  }
  auto d = std::make_shared<Delivery>(*impl_, std::move(url), std::move(*where), std::move(call_id), std::move(result));
  asio::post(impl_->ioc, [d] { d->start(); });
}

std::size_t Callbacks::pending() const {
  std::lock_guard lock(impl_->mu);
  return impl_->pending;
}

std::uint64_t Callbacks::delivered() const { return impl_->delivered.load(); }

std::uint64_t Callbacks::failed() const { return impl_->failed.load(); }

}  // namespace unifn::http
