// Listener and sessions on Beast: keep-alive, pipelining, limits, timeouts, hang-ups, graceful
// stop.
#include "src/http/server.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <array>
#include <cerrno>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <fmt/format.h>
#include <future>
#include <linux/filter.h>
#include <sys/socket.h>
#include <mutex>
#include <optional>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <sstream>
#include <unordered_map>

#include "src/http/connection_table.h"
#include "src/http/header.h"
#include "src/http/json.h"
#include "src/log/log.h"

namespace unifn::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

namespace {

// How much of the next pipelined request a connection reads ahead while a call runs; past it,
// a hang-up is only noticed when the answer is written.
constexpr std::size_t kReadAhead = 64 * 1024;
// How long a connection that we close keeps draining what its client still sends.
constexpr std::chrono::milliseconds kLinger{2000};
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kLastChunk = "0\r\n\r\n";
// What an idle connection reads when its next request begins (the parser reads the rest).
constexpr std::size_t kFirstRead = 4096;
constexpr std::size_t kCauses = 4;  // ConnectionTable::Cause values
// What a streamed answer may have waiting unwritten for a client that does not read: past it the
// connection closes (a log follower must not make the daemon hold its lines without bound).
constexpr std::size_t kMaxStreamBacklog = 1 << 20;
// How long a stopping listener turns new handshakes away before it closes: time for those under
// way (a SYN answered, the client's ACK on its way) to join the accept queue, one round trip on
// the networks a fleet sits on; well under the second after which a turned-away client retries.
constexpr std::chrono::milliseconds kHandshakeSettle{100};
// How often a stopping server looks for connections that became idle, to close them.
constexpr std::chrono::milliseconds kIdleSweep{20};

class Session;

// What the server, its listener, its sessions and the calls' completions share. The completions
// may outlive the Server: they post to a session only while `alive`, checked under `mu`, so never
// into a destroyed io_context.
struct Shared {
  Shared(const ServerOptions& o, Api& a)
      : opts(o), api(a), table({o.max_connections, o.max_connections_per_client}) {
    if (!o.metrics) return;
    auto& r = o.metrics->registry();
    open = &prometheus::BuildGauge()
                .Name("unifn_http_connections")
                .Help("HTTP connections open now")
                .Register(r)
                .Add({});
    accepted_series = &prometheus::BuildCounter()
                           .Name("unifn_http_connections_accepted_total")
                           .Help("HTTP connections accepted, admitted or not")
                           .Register(r)
                           .Add({});
    auto& shed_family =
        prometheus::BuildCounter()
            .Name("unifn_http_connections_shed_total")
            .Help("Idle HTTP connections closed to make room for a new one, by the limit reached")
            .Register(r);
    auto& refused_family =
        prometheus::BuildCounter()
            .Name("unifn_http_connections_refused_total")
            .Help(
                "New HTTP connections answered 503 at accept: each that could make room had a "
                "request under way")
            .Register(r);
    for (auto c : {ConnectionTable::Cause::Total, ConnectionTable::Cause::PerClient,
                   ConnectionTable::Cause::Descriptors}) {
      const prometheus::Labels l{{"limit", std::string(ConnectionTable::name(c))}};
      shed_series[static_cast<std::size_t>(c)] = &shed_family.Add(l);
      refused_series[static_cast<std::size_t>(c)] = &refused_family.Add(l);
    }
  }
  const ServerOptions opts;
  Api& api;
  std::atomic<bool> draining{false};
  std::mutex mu;
  std::condition_variable cv;  // in_flight or sessions changed
  bool alive = true;
  std::size_t in_flight = 0;
  std::unordered_map<ConnectionTable::Id, std::weak_ptr<Session>>
      sessions;                     // admitted, not yet destroyed
  ConnectionTable table;            // which connections are held and idle; under mu
  ConnectionTable::Id next_id = 0;  // the acceptor's only
  std::atomic<std::uint64_t> shed{0}, refused{0};
  std::atomic<bool> reserve_noted{false};
  prometheus::Gauge* open = nullptr;
  prometheus::Counter* accepted_series = nullptr;
  std::array<prometheus::Counter*, kCauses> shed_series{}, refused_series{};

  // Under mu, after the table changed.
  void table_changed() {
    if (open) open->Set(static_cast<double>(table.size()));
  }
  void count_shed(ConnectionTable::Cause c) {
    shed.fetch_add(1);
    if (auto* s = shed_series[static_cast<std::size_t>(c)]) s->Increment();
  }
  void count_refused(ConnectionTable::Cause c) {
    refused.fetch_add(1);
    if (auto* s = refused_series[static_cast<std::size_t>(c)]) s->Increment();
  }
};

// One request between its header and its written answer; Server::stop waits for these.
class InFlight {
 public:
  explicit InFlight(std::shared_ptr<Shared> s) : s_(std::move(s)) {
    std::lock_guard lock(s_->mu);
    ++s_->in_flight;
  }
  ~InFlight() {
    std::lock_guard lock(s_->mu);
    --s_->in_flight;
    s_->cv.notify_all();
  }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::shared_ptr<Shared> s_;
};

// A client as the per-client limit counts it: its IPv4 address (an IPv4-mapped IPv6 one included),
// or its IPv6 /64, which one host or home network is commonly given whole.
std::string client_address(const asio::ip::address& a) {
  if (a.is_v4()) return a.to_string();
  auto v6 = a.to_v6();
  if (v6.is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_string();
  auto bytes = v6.to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return asio::ip::address_v6(bytes).to_string() + "/64";
}

bool is_http_error(const beast::error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category();
}

// What a streamed answer's BodyStream and its session share.
struct StreamState {
  std::atomic<bool> dead{false};          // the connection closed: nothing more is written
  std::atomic<std::size_t> unwritten{0};  // bytes pushed, not yet written
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<Shared> shared, ConnectionTable::Id id)
      : stream_(std::move(socket)), shared_(std::move(shared)), id_(id) {}

  ~Session() {
    std::lock_guard lock(shared_->mu);
    shared_->sessions.erase(id_);
    shared_->table.remove(id_);
    shared_->table_changed();
    shared_->cv.notify_all();
  }

  ConnectionTable::Id id() const { return id_; }

  // Once admitted (the listener registered it).
  void start() {
    beast::error_code ec;
    stream_.socket().set_option(tcp::no_delay(true), ec);
    // Synchronous reads while a call runs must not block (async operations are unaffected).
    stream_.socket().non_blocking(true, ec);
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_request(); });
  }

  // Not admitted: a 503 with the reason and Retry-After, sent when the fresh socket takes it at
  // once (it does: its send buffer is empty), then closed. Never waits, never lingers: a refusal
  // must not hold a descriptor.
  void refuse_at_accept(std::string_view why) {
    closed_ = true;
    beast::error_code ec;
    try {
      auto res = json_error(503, why, 11);
      res.keep_alive(false);
      set_field(res, bhttp::field::server, "unifnd");
      set_field(res, bhttp::field::retry_after, "1");
      std::ostringstream text;
      text << res;
      stream_.socket().non_blocking(true, ec);
      stream_.socket().write_some(asio::buffer(text.str()), ec);
    } catch (const std::exception&) {  // no memory for the answer: the close says enough
    }
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  // From any thread: close now, cancelling a call under way.
  void close_from_outside() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] { self->close(); });
  }

  // From any thread, while the server stops: close if it waits for a request and none is arriving.
  // A request whose bytes came is served (its answer closes the connection).
  void close_if_idle_from_outside() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->closed_ || !self->awaiting_) return;
      beast::error_code ec;
      if (self->stream_.socket().available(ec) > 0 && !ec) return;
      self->close();
    });
  }

  // From any thread: the answer to the request with generation gen.
  static void deliver(const std::shared_ptr<Shared>& shared, const std::weak_ptr<Session>& weak,
                      std::uint64_t gen, Response res) {
    post(shared, weak, [gen, res = std::move(res)](Session& self) mutable {
      self.on_response(gen, std::move(res));
    });
  }

  // From any thread: fn run on the session's strand; false when the session or the server is
  // gone (fn is not run).
  template <typename Fn>
  static bool post(const std::shared_ptr<Shared>& shared, const std::weak_ptr<Session>& weak,
                   Fn fn) {
    std::lock_guard lock(shared->mu);
    if (!shared->alive) return false;
    auto self = weak.lock();
    if (!self) return false;
    auto ex = self->stream_.get_executor();
    asio::post(ex, [self = std::move(self), fn = std::move(fn)]() mutable { fn(*self); });
    return true;
  }

  // The streamed answer to the request with generation gen (Api's OpenStream): head now, then the
  // pieces in the order pushed (posts to one strand run in order), then the end.
  void on_stream_head(std::uint64_t gen, Response head, std::shared_ptr<StreamState> state) {
    if (closed_ || !waiting_ || gen != gen_) {
      state->dead = true;
      return;
    }
    // waiting_ stays set: watch_peer keeps noticing a client that hangs up (that ends the stream).
    streaming_ = std::move(state);
    head.version(version_);
    head.keep_alive(false);  // the connection ends with the stream
    set_field(head, bhttp::field::server, "unifnd");
    if (version_ >= 11) head.chunked(true);  // an HTTP/1.0 client reads to the close instead
    auto sp = std::make_shared<Response>(std::move(head));
    auto sr = std::make_shared<bhttp::response_serializer<bhttp::string_body>>(*sp);
    writing_ = true;
    stream_.expires_after(shared_->opts.read_timeout);
    bhttp::async_write_header(
        stream_, *sr, [self = shared_from_this(), sp, sr](beast::error_code ec, std::size_t) {
          self->writing_ = false;
          if (self->closed_) return;
          if (ec) return self->close();
          self->stream_.expires_never();
          self->pump();
        });
  }
  void on_stream_piece(std::uint64_t gen, std::string piece) {
    if (closed_ || !streaming_ || gen != gen_ || piece.empty()) return;
    pieces_.push_back(std::move(piece));
    pump();
  }
  void on_stream_end(std::uint64_t gen) {
    if (closed_ || !streaming_ || gen != gen_) return;
    stream_ended_ = true;
    pump();
  }

 private:
  // The next request: begun already when bytes of it were read ahead (pipelined); otherwise the
  // connection is idle, and may be shed to make room for another, until its first byte comes.
  void read_request() {
    if (closed_) return;
    if (buffer_.size() > 0) return begin_request();
    set_idle();
    const auto& o = shared_->opts;
    // A fresh connection's whole first request must arrive within the read timeout (this deadline
    // stays for its header); a kept-alive connection may wait for the idle timeout.
    stream_.expires_after(first_ ? o.read_timeout : o.idle_timeout);
    awaiting_ = true;
    stream_.async_read_some(buffer_.prepare(kFirstRead), [self = shared_from_this()](
                                                             beast::error_code ec, std::size_t n) {
      self->awaiting_ = false;
      if (self->closed_) return;
      if (ec) return self->close();  // the client left, timed out, or the connection was shed
      self->buffer_.commit(n);
      self->begin_request();
    });
  }

  void begin_request() {
    // Shed while idle (its place went to a new connection) before this request came: not served.
    if (!set_busy()) return close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(shared_->opts.max_header_bytes, UINT32_MAX)));
    parser_->body_limit(shared_->opts.max_body_bytes);
    if (!first_) stream_.expires_after(shared_->opts.read_timeout);
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (closed_) return;
    // The client left, timed out, or the socket failed: nothing to answer.
    if (ec && (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
               !is_http_error(ec)))
      return close();
    first_ = false;
    in_flight_.emplace(shared_);
    const auto& o = shared_->opts;
    if (ec == bhttp::error::header_limit)
      return refuse(431, fmt::format("the request header is larger than the limit of {} bytes",
                                     o.max_header_bytes));
    if (ec == bhttp::error::body_limit) return refuse_too_large();
    if (ec) return refuse(400, fmt::format("malformed request: {}", ec.message()));
    if (auto len = parser_->content_length(); len && *len > o.max_body_bytes)
      return refuse_too_large();
    if (parser_->is_done()) return dispatch();
    const auto& h = parser_->get();
    if (h.version() == 11 && beast::iequals(h[bhttp::field::expect], "100-continue")) {
      // The client waits for this before sending its body (curl does for large bodies).
      stream_.expires_after(o.read_timeout);
      asio::async_write(stream_, asio::buffer(kContinue),
                        [self = shared_from_this()](beast::error_code ec, std::size_t) {
                          if (ec) return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    if (closed_) return;
    stream_.expires_after(shared_->opts.read_timeout);
    bhttp::async_read(
        stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
          if (self->closed_) return;
          if (ec == bhttp::error::body_limit)
            return self->refuse_too_large();  // a chunked body grew too large
          if (ec && is_http_error(ec) && ec != bhttp::error::end_of_stream &&
              ec != bhttp::error::partial_message)
            return self->refuse(400, fmt::format("malformed request body: {}", ec.message()));
          if (ec) return self->close();
          self->dispatch();
        });
  }

  void dispatch() {
    Request req = parser_->release();
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    cancelled_ = std::make_shared<runtime::CancelToken>();
    waiting_ = true;
    const auto gen = ++gen_;
    stream_.expires_never();  // the function has its own deadline
    watch_peer(gen);
    auto reply = [shared = shared_, weak = weak_from_this(), gen](Response res) {
      deliver(shared, weak, gen, std::move(res));
    };
    auto open_stream = [shared = shared_, weak = weak_from_this(),
                        gen](Response head) -> std::shared_ptr<BodyStream> {
      auto stream = std::make_shared<PostedStream>(shared, weak, gen);
      if (!post(shared, weak,
                [gen, head = std::move(head), state = stream->state()](Session& self) mutable {
                  self.on_stream_head(gen, std::move(head), std::move(state));
                }))
        stream->state()->dead = true;
      return stream;
    };
    try {
      shared_->api.handle(std::move(req), std::move(reply), cancelled_, std::move(open_stream));
    } catch (const std::exception& e) {
      deliver(shared_, weak_from_this(), gen,
              json_error(500, fmt::format("internal error: {}", e.what()), version_));
    }
  }

  // While a call runs, read ahead what the client sends: a pipelined request stays in the buffer
  // for the parser, and an end of stream or a reset means the client is gone.
  void watch_peer(std::uint64_t gen) {
    if (buffer_.size() >= kReadAhead) return;
    stream_.socket().async_wait(
        tcp::socket::wait_read, [self = shared_from_this(), gen](beast::error_code ec) {
          if (ec || self->closed_ || !self->waiting_ || gen != self->gen_) return;
          beast::error_code rec;
          auto room = std::min<std::size_t>(16384, kReadAhead - self->buffer_.size());
          auto n = self->stream_.socket().read_some(self->buffer_.prepare(room), rec);
          if (rec == asio::error::would_block || rec == asio::error::try_again)
            return self->watch_peer(gen);
          if (rec) return self->close();  // cancels the call
          self->buffer_.commit(n);
          self->watch_peer(gen);
        });
  }

  void on_response(std::uint64_t gen, Response res) {
    if (closed_ || !waiting_ || gen != gen_) return;  // the client went away meanwhile: dropped
    waiting_ = false;
    const bool keep = keep_alive_ && !shared_->draining;
    res.version(version_);
    res.keep_alive(keep);
    set_field(res, bhttp::field::server, "unifnd");
    write(std::move(res), keep);
  }

  void refuse_too_large() {
    auto target = parser_->get().target();
    shared_->api.record_refused(std::string_view(target.data(), target.size()), 413);
    refuse(413, fmt::format("the request body is larger than the limit of {} bytes",
                            shared_->opts.max_body_bytes));
  }

  // An error answered before the request was read in full: the connection cannot be reused.
  void refuse(unsigned status, const std::string& why) {
    auto res = json_error(status, why, 11);
    res.keep_alive(false);
    set_field(res, bhttp::field::server, "unifnd");
    write(std::move(res), false);
  }

  void write(Response res, bool keep) {
    auto sp = std::make_shared<Response>(std::move(res));
    stream_.expires_after(shared_->opts.read_timeout);
    bhttp::async_write(stream_, *sp,
                       [self = shared_from_this(), sp, keep](beast::error_code ec, std::size_t) {
                         self->in_flight_.reset();
                         if (self->closed_) return;
                         if (ec) return self->close();
                         if (!keep) return self->linger();
                         self->read_request();
                       });
  }

  // Writes the next piece of a streamed answer (chunked for HTTP/1.1), or its end once ended.
  void pump() {
    if (writing_ || closed_ || !streaming_) return;
    const bool chunked = version_ >= 11;
    if (pieces_.empty()) {
      if (!stream_ended_) return;
      auto done = [self = shared_from_this()] {
        self->waiting_ = false;
        self->streaming_.reset();
        self->in_flight_.reset();
        self->linger();
      };
      if (!chunked) return done();
      writing_ = true;
      stream_.expires_after(shared_->opts.read_timeout);
      asio::async_write(stream_, asio::buffer(kLastChunk),
                        [self = shared_from_this(), done](beast::error_code ec, std::size_t) {
                          self->writing_ = false;
                          if (self->closed_) return;
                          if (ec) return self->close();
                          done();
                        });
      return;
    }
    const std::size_t size = pieces_.front().size();
    auto sp = std::make_shared<std::string>(
        chunked ? fmt::format("{:x}\r\n{}\r\n", size, pieces_.front()) : pieces_.front());
    pieces_.pop_front();
    writing_ = true;
    stream_.expires_after(shared_->opts.read_timeout);
    asio::async_write(stream_, asio::buffer(*sp),
                      [self = shared_from_this(), sp, size](beast::error_code ec, std::size_t) {
                        self->writing_ = false;
                        if (self->streaming_) self->streaming_->unwritten -= size;
                        if (self->closed_) return;
                        if (ec) return self->close();
                        self->stream_.expires_never();
                        self->pump();
                      });
  }

 public:
  // Api's BodyStream for a session: each call posted to the session's strand.
  class PostedStream : public BodyStream {
   public:
    PostedStream(std::shared_ptr<Shared> shared, std::weak_ptr<Session> weak, std::uint64_t gen)
        : shared_(std::move(shared)), weak_(std::move(weak)), gen_(gen) {}
    const std::shared_ptr<StreamState>& state() const { return state_; }
    bool push(std::string piece) override {
      if (state_->dead) return false;
      if (state_->unwritten.fetch_add(piece.size()) + piece.size() > kMaxStreamBacklog) {
        state_->dead = true;  // a client that does not read: its connection closes
        post(shared_, weak_, [](Session& self) { self.close(); });
        return false;
      }
      const auto gen = gen_;
      if (!post(shared_, weak_, [gen, piece = std::move(piece)](Session& self) mutable {
            self.on_stream_piece(gen, std::move(piece));
          }))
        state_->dead = true;
      return !state_->dead;
    }
    void end() override {
      const auto gen = gen_;
      post(shared_, weak_, [gen](Session& self) { self.on_stream_end(gen); });
    }

   private:
    std::shared_ptr<Shared> shared_;
    std::weak_ptr<Session> weak_;
    const std::uint64_t gen_;
    std::shared_ptr<StreamState> state_ = std::make_shared<StreamState>();
  };

 private:
  // Half-close, then drain what the client still sends (a body we refused, pipelined requests)
  // for a bounded time, so that it reads our answer instead of a connection reset.
  void linger() {
    set_idle();  // answered: shedding it now loses nothing
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close();
    stream_.expires_after(std::min<std::chrono::milliseconds>(kLinger, shared_->opts.read_timeout));
    drain_more();
  }

  void drain_more() {
    stream_.async_read_some(asio::buffer(drain_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (ec || self->closed_) return self->close();
                              self->drain_more();
                            });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    if (streaming_) streaming_->dead = true;
    if (waiting_ && cancelled_) cancelled_->cancel();
    waiting_ = false;
    in_flight_.reset();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
    std::lock_guard lock(shared_->mu);  // its place is free from now on
    shared_->table.remove(id_);
    shared_->table_changed();
  }

  void set_idle() {
    std::lock_guard lock(shared_->mu);
    shared_->table.idle(id_);
  }
  bool set_busy() {
    std::lock_guard lock(shared_->mu);
    return shared_->table.busy(id_);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::shared_ptr<Shared> shared_;
  const ConnectionTable::Id id_;
  std::optional<InFlight> in_flight_;
  std::shared_ptr<runtime::CancelToken> cancelled_;
  std::uint64_t gen_ = 0;  // which request an answer belongs to
  bool first_ = true;
  bool waiting_ = false;   // a call is under way; its answer is awaited
  bool awaiting_ = false;  // idle: the first byte of the next request is awaited
  bool keep_alive_ = true;
  unsigned version_ = 11;
  bool closed_ = false;
  std::array<char, 4096> drain_{};
  // A streamed answer under way: its shared state, the pieces not yet written, whether a write
  // is under way (its header's included) and whether the stream has ended.
  std::shared_ptr<StreamState> streaming_;
  std::deque<std::string> pieces_;
  bool writing_ = false;
  bool stream_ended_ = false;
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(asio::io_context& ioc, const tcp::endpoint& ep, std::shared_ptr<Shared> shared)
      : ioc_(ioc),
        acceptor_(asio::make_strand(ioc)),
        retry_(acceptor_.get_executor()),
        shared_(std::move(shared)) {
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  void accept() {
    acceptor_.async_accept(asio::make_strand(ioc_),
                           [self = shared_from_this()](beast::error_code ec, tcp::socket s) {
                             // A connection accepted as the listener was being closed is served all
                             // the same.
                             if (!ec) self->admit(std::move(s));
                             if (self->closing_) return self->finish_closing();
                             if (ec == asio::error::operation_aborted || !self->acceptor_.is_open())
                               return;
                             if (ec) {
                               // Out of descriptors: the longest-idle connection makes room (its
                               // close is posted; the pause below lets it happen).
                               if (ec == asio::error::no_descriptors ||
                                   ec == boost::system::errc::too_many_files_open_in_system)
                                 self->shed_for_descriptors();
                               // Out of descriptors, most likely: say so, and pause rather than
                               // spin.
                               log::error("unifnd: accept failed: {}", ec.message());
                               self->retry_.expires_after(std::chrono::milliseconds(100));
                               self->retry_.async_wait([self](beast::error_code) {
                                 if (self->closing_) return self->finish_closing();
                                 self->accept();
                               });
                               return;
                             }
                             self->accept();
                           });
  }

  // From any thread: new handshakes are turned away from now on (their SYNs are dropped), while
  // those already under way complete and join the accept queue. A client turned away sends its
  // SYN again about a second later and, the listener being closed by then, is refused: a balancer
  // then tries another node, which is safe because nothing was sent. False when the kernel
  // refused the filter (the listener then closes with no such pause).
  bool refuse_new_handshakes() {
    // Classic BPF on the TCP header (where a socket filter starts on a TCP socket): a segment with
    // SYN and not ACK (flags byte 13, SYN 0x02, ACK 0x10) is dropped (return 0), any other kept.
    std::array<sock_filter, 5> code{{
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x12),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x02, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 0),
        BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
    }};
    sock_fprog prog{static_cast<unsigned short>(code.size()), code.data()};
    // The kernel copies the program; the descriptor stays open until close() below.
    return setsockopt(acceptor_.native_handle(), SOL_SOCKET, SO_ATTACH_FILTER, &prog,
                      sizeof prog) == 0;
  }

  // From any thread: accepts what the queue holds, then closes the listener; the future is ready
  // once every connection it accepted is admitted (or refused) and the listener is closed.
  std::future<void> close() {
    auto done = closed_.get_future();
    asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
      self->closing_ = true;
      beast::error_code ec;
      self->retry_.cancel();
      // The pending async_accept completes on this strand, with a connection or aborted, and
      // its handler finishes closing: until then the reactor may accept on our behalf.
      self->acceptor_.cancel(ec);
    });
    return done;
  }

 private:
  // Admits s, in place of an idle connection when a limit is reached, or refuses it with a 503.
  void admit(tcp::socket s) {
    beast::error_code ec;
    const auto peer = s.remote_endpoint(ec);
    if (ec) return;  // gone before it was admitted
    auto& sh = *shared_;
    if (sh.accepted_series) sh.accepted_series->Increment();
    const int ceiling = sh.opts.descriptor_ceiling;
    const bool low = ceiling > 0 && s.native_handle() >= ceiling;
    if (low && !sh.reserve_noted.exchange(true))
      log::warning(
          "unifnd: open descriptors reached the reserve kept for instances, snapshots and state "
          "files "
          "(a connection got descriptor {}; those from {} on are the reserve, "
          "limits.reserved_descriptors): "
          "from now on a new connection takes the place of an idle one (said once)",
          s.native_handle(), ceiling);
    auto session = std::make_shared<Session>(std::move(s), shared_, sh.next_id++);
    ConnectionTable::Admission a;
    std::shared_ptr<Session> displaced;
    {
      std::lock_guard lock(sh.mu);
      a = sh.table.admit(session->id(), client_address(peer.address()), low);
      if (a.admitted) sh.sessions.emplace(session->id(), session);
      if (a.shed)
        if (auto it = sh.sessions.find(*a.shed); it != sh.sessions.end())
          displaced = it->second.lock();
      sh.table_changed();
    }
    if (a.shed) {
      sh.count_shed(a.cause);
      if (displaced) displaced->close_from_outside();
    }
    if (!a.admitted) {
      sh.count_refused(a.cause);
      return session->refuse_at_accept(a.refusal);
    }
    session->start();
  }

  // On the acceptor's strand, once no async_accept is pending: admits every connection still in
  // the accept queue (each completed its handshake and may have sent its request: closing the
  // listener would reset it), then closes the listener.
  void finish_closing() {
    if (!acceptor_.is_open()) return;
    beast::error_code ec;
    acceptor_.non_blocking(true, ec);
    while (!ec) {
      tcp::socket s(asio::make_strand(ioc_));
      acceptor_.accept(s, ec);  // would_block once the queue is empty
      if (!ec) admit(std::move(s));
    }
    acceptor_.close(ec);
    closed_.set_value();
  }

  void shed_for_descriptors() {
    auto& sh = *shared_;
    std::shared_ptr<Session> victim;
    {
      std::lock_guard lock(sh.mu);
      if (auto id = sh.table.shed_longest_idle())
        if (auto it = sh.sessions.find(*id); it != sh.sessions.end()) victim = it->second.lock();
      sh.table_changed();
    }
    if (!victim) return;
    sh.count_shed(ConnectionTable::Cause::Descriptors);
    victim->close_from_outside();
  }

  asio::io_context& ioc_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_;
  std::shared_ptr<Shared> shared_;
  bool closing_ = false;  // on the strand
  std::promise<void> closed_;
};

tcp::endpoint endpoint_for(const ServerOptions& o, asio::io_context& ioc) {
  std::string host = o.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  beast::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (!ec) return tcp::endpoint(addr, o.port);
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(host, std::to_string(o.port), ec);
  if (ec || results.empty())
    throw std::runtime_error(fmt::format("cannot listen on {}:{}: cannot resolve '{}': {}", o.host,
                                         o.port, host, ec ? ec.message() : "no address"));
  return results.begin()->endpoint();
}

}  // namespace

struct Server::Impl {
  Impl(ServerOptions o, Api& api)
      : opts(std::move(o)), shared(std::make_shared<Shared>(opts, api)) {}
  ServerOptions opts;
  std::shared_ptr<Shared> shared;
  std::unique_ptr<asio::io_context> ioc;
  std::shared_ptr<Listener> listener;
};

Server::Server(ServerOptions opts, Api& api)
    : api_(api), impl_(std::make_unique<Impl>(std::move(opts), api)) {}

Server::~Server() {
  stop();
  impl_->listener.reset();
  impl_->ioc.reset();  // destroys what handlers still hold: sessions and their sockets
}

void Server::start() {
  if (started_) throw std::runtime_error("the HTTP server was already started");
  started_ = true;
  const auto& o = impl_->opts;
  const unsigned n = std::max(1u, o.io_threads);
  impl_->ioc = std::make_unique<asio::io_context>(static_cast<int>(n));
  auto ep = endpoint_for(o, *impl_->ioc);
  try {
    impl_->listener = std::make_shared<Listener>(*impl_->ioc, ep, impl_->shared);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("cannot listen on {}:{}: {}", o.host, o.port, e.what()));
  }
  port_ = impl_->listener->port();
  impl_->listener->accept();
  for (unsigned i = 0; i < n; ++i) threads_.emplace_back([ioc = impl_->ioc.get()] { ioc->run(); });
}

void Server::stop(std::chrono::milliseconds grace) {
  if (!started_ || stopped_) return;
  stopped_ = true;
  const auto deadline = std::chrono::steady_clock::now() + grace;
  auto& s = *impl_->shared;
  s.draining = true;         // every answer from now on closes its connection
  api_.set_shutting_down();  // /healthz 503: a balancer sends new calls elsewhere
  if (impl_->listener) {
    if (grace > std::chrono::milliseconds(0)) {
      if (impl_->listener->refuse_new_handshakes())
        std::this_thread::sleep_for(std::min(kHandshakeSettle, grace));
      else
        log::warning("unifnd: cannot filter new connections while stopping: {}",
                     std::strerror(errno));
    }
    // Bounded anyway: the I/O threads run the close unless they are all stuck.
    impl_->listener->close().wait_for(std::chrono::seconds(1));
  }
  // Every connection accepted is served: one that waits for a request is closed once nothing is
  // arriving on it, the others when their answer is written; until the grace runs out.
  std::vector<std::shared_ptr<Session>> open;
  for (;;) {
    {
      std::lock_guard lock(s.mu);
      if (s.sessions.empty() || std::chrono::steady_clock::now() >= deadline) break;
      for (auto& [id, weak] : s.sessions)
        if (auto session = weak.lock()) open.push_back(std::move(session));
    }
    // Outside the lock: the last reference to a session may be ours, and its destructor locks.
    for (auto& session : open) session->close_if_idle_from_outside();
    open.clear();
    std::unique_lock lock(s.mu);
    s.cv.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + kIdleSweep),
                    [&] { return s.sessions.empty(); });
  }
  {
    std::unique_lock lock(s.mu);
    for (auto& [id, weak] : s.sessions)
      if (auto session = weak.lock()) open.push_back(std::move(session));
  }
  for (auto& session : open) session->close_from_outside();  // past the grace: calls cancelled
  open.clear();
  {
    // Closed sockets complete their handlers with errors and the sessions go; bounded anyway.
    std::unique_lock lock(s.mu);
    s.cv.wait_for(lock, std::chrono::seconds(1), [&] { return s.sessions.empty(); });
  }
  if (impl_->ioc) impl_->ioc->stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  std::lock_guard lock(s.mu);
  s.alive = false;
}

std::size_t Server::connections() const {
  std::lock_guard lock(impl_->shared->mu);
  return impl_->shared->sessions.size();
}

std::size_t Server::connections_idle() const {
  std::lock_guard lock(impl_->shared->mu);
  return impl_->shared->table.idle_count();
}

std::uint64_t Server::connections_shed() const { return impl_->shared->shed.load(); }
std::uint64_t Server::connections_refused() const { return impl_->shared->refused.load(); }

std::size_t Server::requests_in_flight() const {
  std::lock_guard lock(impl_->shared->mu);
  return impl_->shared->in_flight;
}

}  // namespace unifn::http
