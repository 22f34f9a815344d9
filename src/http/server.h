// The HTTP server: an Asio listener, one Beast session per connection on its own strand, I/O
// threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "src/http/api.h"

namespace unifn::http {

struct ServerOptions {
  std::string host =
      "127.0.0.1";            // an IPv4 or IPv6 address (brackets allowed) or a name to resolve
  std::uint16_t port = 8080;  // 0: any free port, see Server::port()
  std::size_t max_body_bytes = 6291456;
  std::size_t max_header_bytes = 16384;
  // For a request to arrive once its connection is open or its first bytes came, for a body, and
  // for an answer to be taken by the client.
  std::chrono::milliseconds read_timeout{30000};
  // For the next request on a kept-alive connection.
  std::chrono::milliseconds idle_timeout{60000};
  unsigned io_threads = 2;
  // Connections held at most, in all and from one client address (ConnectionTable says which one
  // makes room). The daemon passes what config::derive_limits makes of limits.max_connections*.
  std::size_t max_connections = std::numeric_limits<std::size_t>::max();
  std::size_t max_connections_per_client = std::numeric_limits<std::size_t>::max();
  // A connection accepted on a descriptor numbered this high or higher lies in the reserve kept
  // for instances, snapshots and state files: it is admitted only in place of an idle one. The
  // daemon passes its open-file limit minus limits.reserved_descriptors; 0: no reserve.
  int descriptor_ceiling = 0;
  // Where the connection gauge and the accepted, shed and refused counters go; none when null.
  metrics::Metrics* metrics = nullptr;
};

// Connections: HTTP/1.1 keep-alive, pipelined requests answered in order, one request handled at
// a time per connection. A Content-Length over the body limit is answered 413 right after the
// header, before the body is read, and the connection closes (after draining what the client
// still sends, so that it reads the 413 rather than a reset); headers over their limit get 431,
// malformed requests 400. While a call runs the connection keeps reading ahead (bounded): a client
// that hangs up has its Invocation cancelled (the runtime stops its guest), and any answer that
// arrives later is dropped. Past max_connections (in all, or from one client address), an idle
// connection makes room for the new one and is closed; a connection with a request under way is
// never closed for another. A new connection that finds none to displace is answered 503 with
// Retry-After and closed.
class Server {
 public:
  Server(ServerOptions opts, Api& api);
  ~Server();  // stop() with no grace
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds, listens and starts the I/O threads. Throws std::runtime_error with a sentence that
  // names the address when it cannot listen. Once only.
  void start();
  std::uint16_t port() const { return port_; }  // the bound port, after start()

  // Stops so that a load balancer in front loses no call: /healthz answers 503 at once; new
  // handshakes are turned away (so the client retries, then finds the port closed: connection
  // refused, which a balancer safely retries elsewhere) while those under way complete; every
  // connection in the accept queue is accepted, then the listener closes. Then, for up to grace,
  // every request that arrives on a connection held is served, and every answer closes its
  // connection; a connection waiting for a request is closed once nothing arrives on it. Past the
  // grace every connection is closed (calls still running are cancelled) and the I/O threads are
  // joined. With no grace, the listener closes at once. Idempotent. Not to be called from an I/O
  // thread (from an Api handler).
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(0));

  std::size_t connections() const;            // open now
  std::size_t connections_idle() const;       // of those, held with no request under way
  std::size_t requests_in_flight() const;     // read, and not yet answered
  std::uint64_t connections_shed() const;     // closed to make room for another, since start
  std::uint64_t connections_refused() const;  // answered 503 at accept, since start

  struct Impl;  // defined in server.cpp

 private:
  Api& api_;
  std::unique_ptr<Impl> impl_;
  std::vector<std::thread> threads_;
  std::uint16_t port_ = 0;
  bool started_ = false, stopped_ = false;
};

}  // namespace unifn::http
