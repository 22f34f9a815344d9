// The HTTP server: an Asio listener, one Beast session per connection on its own strand, I/O threads.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "http/api.h"

namespace unifn::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;  // 0: any free port
  std::size_t max_body_bytes = 6291456;
  std::size_t max_header_bytes = 16384;
  std::chrono::milliseconds read_timeout{30000};
  std::chrono::milliseconds idle_timeout{60000};
  unsigned io_threads = 2;
};

class Server {
 public:
  Server(ServerOptions opts, Api& api);
  ~Server();
  void start();                // binds, listens and starts the I/O threads; throws with a sentence
  std::uint16_t port() const { return port_; }
  void stop();                 // closes the listener and every connection, joins the threads

 private:
  class Listener;
  ServerOptions opts_;
  Api& api_;
  boost::asio::io_context ioc_;
  std::shared_ptr<Listener> listener_;
  std::vector<std::thread> threads_;
  std::uint16_t port_ = 0;
};

}  // namespace unifn::http
