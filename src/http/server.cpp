// Listener and sessions on Boost.Beast: keep-alive, header and body limits (413 before the body), timeouts.
#include "http/server.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <array>
#include <optional>

namespace unifn::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const ServerOptions& opts, Api& api)
      : stream_(std::move(socket)), opts_(opts), api_(api) {}

  void start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_header(); });
  }

 private:
  void read_header() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(opts_.max_header_bytes));
    parser_->body_limit(opts_.max_body_bytes);
    stream_.expires_after(first_ ? opts_.read_timeout : opts_.idle_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec == bhttp::error::header_limit) return fail(431, "the request headers are larger than the limit");
    if (ec == bhttp::error::body_limit)  // Content-Length alone is over the limit: answer before the body
      return fail(413, fmt::format("the request body is larger than the limit of {} bytes", opts_.max_body_bytes));
    if (ec) return close();
    first_ = false;
    auto len = parser_->content_length();
    if (len && *len > opts_.max_body_bytes)
      return fail(413, fmt::format("the request body of {} bytes is larger than the limit of {} bytes", *len,
                                   opts_.max_body_bytes));
    stream_.expires_after(opts_.read_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_body(ec); });
  }

  void on_body(beast::error_code ec) {
    if (ec == bhttp::error::body_limit)
      return fail(413, fmt::format("the request body is larger than the limit of {} bytes", opts_.max_body_bytes));
    if (ec) return close();
    stream_.expires_never();  // the function has its own deadline
    auto self = shared_from_this();
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    waiting_ = true;
    watch_peer(cancelled);
    api_.handle(parser_->release(), [self](Response res) {
      asio::post(self->stream_.get_executor(), [self, res = std::move(res)]() mutable {
        self->waiting_ = false;
        self->write(std::move(res));
      });
    }, cancelled);
  }

  // While a call runs, notice a client that hangs up: its queued call is dropped and its result
  // discarded. Bytes that arrive meanwhile are a pipelined request and are left for the parser.
  void watch_peer(std::shared_ptr<std::atomic<bool>> cancelled) {
    stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this(), cancelled](beast::error_code ec) {
      if (ec || !self->waiting_) return;
      char byte;
      beast::error_code peek_ec;
      auto n = self->stream_.socket().receive(asio::buffer(&byte, 1), tcp::socket::message_peek, peek_ec);
      if (peek_ec || n == 0) cancelled->store(true);  // EOF or reset: the client is gone
    });
  }

  void write(Response res) {
    auto sp = std::make_shared<Response>(std::move(res));
    stream_.expires_after(opts_.read_timeout);
    bhttp::async_write(stream_, *sp, [self = shared_from_this(), sp](beast::error_code ec, std::size_t) {
      if (ec) return self->close();
      if (!sp->keep_alive()) return self->linger();
      self->read_header();
    });
  }

  void fail(unsigned status, const std::string& why) {
    auto res = json_error(status, why);
    res.keep_alive(false);
    write(std::move(res));
  }

  // Half-close and drain what the client is still sending, so that it reads our answer
  // (a 413 sent before the body) instead of a connection reset.
  void linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::seconds(2));
    drain_ = std::make_shared<std::array<char, 16384>>();
    drain_more();
  }
  void drain_more() {
    stream_.async_read_some(asio::buffer(*drain_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->close();
      self->drain_more();
    });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  const ServerOptions& opts_;
  Api& api_;
  bool first_ = true;
  bool waiting_ = false;  // a call is running for this connection
  std::shared_ptr<std::array<char, 16384>> drain_;
};

}  // namespace

class Server::Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(asio::io_context& ioc, tcp::endpoint ep, const ServerOptions& opts, Api& api)
      : ioc_(ioc), acceptor_(asio::make_strand(ioc)), opts_(opts), api_(api) {
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  void accept() {
    acceptor_.async_accept(asio::make_strand(ioc_), [self = shared_from_this()](beast::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) std::make_shared<Session>(std::move(s), self->opts_, self->api_)->start();
      self->accept();
    });
  }
  void close() {
    asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->acceptor_.close(ec);
    });
  }

 private:
  asio::io_context& ioc_;
  tcp::acceptor acceptor_;
  const ServerOptions& opts_;
  Api& api_;
};

Server::Server(ServerOptions opts, Api& api) : opts_(std::move(opts)), api_(api) {}

Server::~Server() { stop(); }

void Server::start() {
  beast::error_code ec;
  auto addr = asio::ip::make_address(opts_.host, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot listen on '{}': not an IP address", opts_.host));
  try {
    listener_ = std::make_shared<Listener>(ioc_, tcp::endpoint(addr, opts_.port), opts_, api_);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("cannot listen on {}:{}: {}", opts_.host, opts_.port, e.what()));
  }
  port_ = listener_->port();
  listener_->accept();
  for (unsigned i = 0; i < std::max(1u, opts_.io_threads); ++i) threads_.emplace_back([this] { ioc_.run(); });
}

void Server::stop() {
  if (threads_.empty()) return;
  listener_->close();
  ioc_.stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace unifn::http
