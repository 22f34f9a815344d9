// A fleet on one machine: three unifnd nodes behind nginx, configured from configs/fleet: a
// function deployed to each through the provider API is reached on all three; then wrk's load
// while one node is stopped with SIGTERM and another killed; the same behind HAProxy with a
// SIGTERM; and the shipped balancer configurations pass their tools' checks.
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "test/e2e/daemon_fixture.h"
#include "test/e2e/loopback_client.h"
#include "test/support/platform_skip.h"

using namespace unifn::test;
using namespace std::chrono_literals;

namespace {

const std::string kConfigs = std::string(UNIFN_SOURCE_DIR) + "/configs/fleet";
// The node addresses and the balancer's own address the shipped configurations name.
const std::vector<std::string> kShippedNodes = {"127.0.0.1:8081", "127.0.0.1:8082",
                                                "127.0.0.1:8083"};
const std::string kShippedListen = "127.0.0.1:8080";

void need_tool(const std::string& name) {
  if (sh("command -v " + name + " >/dev/null 2>&1").status != 0)
    skip_test(name + " is not installed (scripts/install-deps.sh installs it)");
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

// A loopback port that was free a moment ago.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  // Safe: sockaddr_in as sockaddr, with its size.
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);  // Safe: as above.
  ::close(fd);
  return ntohs(a.sin_port);
}

// A shipped configuration (configs/fleet/name) with the nodes' and the balancer's ports put in.
std::string fleet_config(const std::string& name, int port, const std::vector<int>& node_ports) {
  auto conf = read_file(kConfigs + "/" + name);
  REQUIRE(conf.find(kShippedListen) != std::string::npos);
  conf = replace_all(conf, kShippedListen, "127.0.0.1:" + std::to_string(port));
  for (std::size_t i = 0; i < kShippedNodes.size(); ++i) {
    REQUIRE(conf.find(kShippedNodes[i]) != std::string::npos);
    conf = replace_all(conf, kShippedNodes[i], "127.0.0.1:" + std::to_string(node_ports.at(i)));
  }
  return conf;
}

std::uint64_t number_after(const std::string& text, const std::string& pattern) {
  std::smatch m;
  return std::regex_search(text, m, std::regex(pattern)) ? std::stoull(m[1]) : 0;
}

// A balancer as this test's own process, on a port of its own in front of the nodes: started by
// a shell command line, ready once /healthz answers through it (a node's), ended with stop_signal.
class Balancer {
 public:
  Balancer(const Balancer&) = delete;
  Balancer& operator=(const Balancer&) = delete;
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 protected:
  Balancer(int stop_signal, const char* tag) : dir_(tag), stop_signal_(stop_signal) {}
  ~Balancer() {
    if (pid_ <= 0) return;
    kill(pid_, stop_signal_);
    for (int i = 0; i < 200 && kill(pid_, 0) == 0; ++i) std::this_thread::sleep_for(25ms);
    kill(pid_, SIGKILL);
  }
  void start(const std::string& command, const std::string& output) {
    pid_ = std::stoi(sh(command + " >" + output + " 2>&1 & echo $!").out);
    for (int i = 0; i < 200 && curl(url("/healthz")) != "OK\n"; ++i)
      std::this_thread::sleep_for(25ms);
    REQUIRE(curl(url("/healthz")) == "OK\n");
  }
  const TempDir dir_;  // removed after the process ended
  const int port_ = free_port();

 private:
  const int stop_signal_;
  pid_t pid_ = 0;
};

// nginx from the shipped nginx.conf with the ports put in; its pid, logs and temporary files
// under a directory of its own (no root needed).
class Nginx : public Balancer {
 public:
  explicit Nginx(const std::vector<int>& node_ports) : Balancer(SIGQUIT, "unifn-nginx") {
    std::filesystem::create_directories(prefix_ / "logs");
    std::filesystem::create_directories(prefix_ / "tmp");
    conf_ = prefix_.write("nginx.conf", fleet_config("nginx.conf", port_, node_ports)).string();
    const auto checked = sh(command("-t") + " 2>&1");
    INFO(checked.out);
    REQUIRE(checked.status == 0);
    start(command("-g 'daemon off;'"), prefix_.str() + "/logs/stdout.log");
  }
  std::string access_log() const { return read_file(prefix_ / "logs/access.log"); }

 private:
  std::string command(const std::string& extra) const {
    return "nginx -p " + prefix_.str() + "/ -c " + conf_ + " " + extra;
  }
  const TempDir& prefix_ = dir_;
  std::string conf_;
};

// HAProxy from the shipped haproxy.cfg with the ports put in.
class Haproxy : public Balancer {
 public:
  explicit Haproxy(const std::vector<int>& node_ports) : Balancer(SIGTERM, "unifn-haproxy") {
    const auto conf = dir_.write("haproxy.cfg", fleet_config("haproxy.cfg", port_, node_ports));
    start("haproxy -f " + conf.string(), dir_.str() + "/haproxy.log");
  }
};

// wrk POSTing from kConnections connections to url for a while, in the background.
class PostLoad {
 public:
  static constexpr int kConnections = 16;
  struct Outcome {
    Result run;
    std::uint64_t calls = 0, non2xx = 0, socket_errors = 0;
  };
  PostLoad(const std::string& url, int seconds) {
    // Invocations are POSTs, which a balancer never sends to a second node once sent to one.
    const auto script = dir_.write("post.lua", "wrk.method = \"POST\"\nwrk.body = \"fleet\"\n");
    const auto cmd = "wrk -t2 -c" + std::to_string(kConnections) + " -d" + std::to_string(seconds) +
                     "s --timeout 10s -s " + script.string() + " " + url + " 2>&1";
    run_ = std::async(std::launch::async, [cmd] { return sh(cmd); });
  }
  Outcome finish() {
    Outcome o;
    o.run = run_.get();
    const auto& out = o.run.out;
    o.calls = number_after(out, R"(([0-9]+) requests in)");
    o.non2xx = number_after(out, R"(Non-2xx or 3xx responses: ([0-9]+))");
    std::smatch m;
    if (std::regex_search(out, m,
                          std::regex(R"(Socket errors: connect ([0-9]+), read ([0-9]+), write )"
                                     R"(([0-9]+), timeout ([0-9]+))")))
      for (int i = 1; i <= 4; ++i) o.socket_errors += std::stoull(m[i]);
    return o;
  }

 private:
  TempDir dir_{"unifn-fleet"};
  std::future<Result> run_;
};

// One line of the access log that configs/fleet/nginx.conf writes.
struct Logged {
  double at = 0;         // seconds since the epoch
  int status = 0;        // nginx's answer
  std::string last;      // the node that answered (the last one tried)
  bool retried = false;  // more than one node tried
  std::string target;    // the request's path
};

std::vector<Logged> parse_access_log(const std::string& text) {
  std::vector<Logged> out;
  std::istringstream in(text);
  const std::regex line(
      R"(^([0-9.]+) ([0-9]+) upstream=([^ ]+(?:, [^ ]+)*) upstream_status=.* "[A-Z]+ ([^ ]+) )");
  for (std::string l; std::getline(in, l);) {
    std::smatch m;
    if (!std::regex_search(l, m, line)) continue;
    Logged e;
    e.at = std::stod(m[1]);
    e.status = std::stoi(m[2]);
    const std::string tried = m[3];
    e.retried = tried.find(", ") != std::string::npos;
    e.last = tried.substr(tried.rfind(' ') == std::string::npos ? 0 : tried.rfind(' ') + 1);
    e.target = m[4];
    out.push_back(e);
  }
  return out;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

TEST_CASE("fleet: the shipped nginx and HAProxy configurations pass nginx -t and haproxy -c") {
  need_tool("nginx");
  need_tool("haproxy");
  TempDir prefix("unifn-nginx");
  std::filesystem::create_directories(prefix / "logs");
  std::filesystem::create_directories(prefix / "tmp");
  const auto n = sh("nginx -t -p " + prefix.str() + "/ -c " + kConfigs + "/nginx.conf 2>&1");
  INFO(n.out);
  CHECK(n.status == 0);
  CHECK_THAT(n.out, Catch::Contains("test is successful"));
  const auto h = sh("haproxy -c -f " + kConfigs + "/haproxy.cfg 2>&1");
  INFO(h.out);
  CHECK(h.status == 0);
  CHECK_THAT(h.out, Catch::Contains("Configuration file is valid"));
  CHECK_THAT(h.out, !Catch::Contains("WARNING"));
}

TEST_CASE(
    "fleet: three nodes behind nginx reach a function deployed to each, then under wrk for 20 s "
    "one is stopped with SIGTERM and one killed "
    "midway: no call fails from the SIGTERM, at most the load's connections from the SIGKILL") {
  need_tool("nginx");
  need_tool("wrk");
  Daemon a("", "", "a"), b("", "", "b"), c("", "", "c");
  Nginx lb({a.port(), b.port(), c.port()});
  const std::string term_node = "127.0.0.1:" + std::to_string(b.port());
  const std::string kill_node = "127.0.0.1:" + std::to_string(c.port());
  const std::string live_node = "127.0.0.1:" + std::to_string(a.port());
  // Every node serves through the balancer (round robin).
  for (int i = 0; i < 6; ++i)
    CHECK(curl("-X POST --data-binary fleet " + lb.url("/function/hello")) == "Hello, fleet!\n");

  // A deploy through the provider API to every node (image uploaded, then the function), then calls
  // through nginx reach the new function on all three.
  for (const Daemon* d : {&a, &b, &c}) {
    CHECK(curl("-o /dev/null -w '%{http_code}' -X PUT --data-binary @" +
               std::string(UNIFN_FUNCTIONS_DIR) + "/hello.elf " +
               d->url("/system/images/hello.elf")) == "201");
    CHECK(curl("-o /dev/null -w '%{http_code}' -X POST -d "
               "'{\"service\":\"greeter\",\"image\":\"hello.elf\"}' " +
               d->url("/system/functions")) == "202");
  }
  for (const Daemon* d : {&a, &b, &c}) {  // a reload follows each 202
    bool ready = false;
    for (int i = 0; i < 400 && !ready; ++i) {
      ready = curl("-X POST --data-binary x " + d->url("/function/greeter")) == "Hello, x!\n";
      if (!ready) std::this_thread::sleep_for(50ms);
    }
    REQUIRE(ready);
  }
  const auto deployed_from = now_s();
  for (int i = 0; i < 30; ++i)
    CHECK(curl("-X POST --data-binary fleet " + lb.url("/function/greeter")) == "Hello, fleet!\n");
  std::set<std::string> reached;
  for (const auto& e : parse_access_log(lb.access_log()))
    if (e.at >= deployed_from && e.status == 200 && e.target == "/function/greeter")
      reached.insert(e.last);
  CHECK(reached == std::set<std::string>{live_node, term_node, kill_node});

  const auto started = now_s();
  PostLoad load(lb.url("/function/hello"), 20);
  std::this_thread::sleep_for(10s);
  const auto events = now_s();
  c.signal(SIGKILL);  // its calls in flight fail; nginx moves the rest
  // The node to stop is paused a moment first, as a busy node would be: the calls nginx sends it
  // meanwhile wait in its accept queue when SIGTERM arrives, and must be answered.
  b.signal(SIGSTOP);
  std::this_thread::sleep_for(200ms);
  b.signal(SIGTERM);
  b.signal(SIGCONT);
  const auto wrk = load.finish();
  INFO(wrk.run.out);
  REQUIRE(wrk.run.status == 0);
  CHECK(b.wait_log("unifnd: stopped"));
  const auto total = wrk.calls, non2xx = wrk.non2xx, socket_errors = wrk.socket_errors;

  // The access log says which node each failure came from. A 499 is a call wrk itself dropped
  // when its 20 s ended.
  std::map<std::string, std::uint64_t> failed, served_after;
  std::uint64_t logged = 0, retried = 0, dropped_by_wrk = 0, failed_elsewhere = 0;
  for (const auto& e : parse_access_log(lb.access_log())) {
    if (e.at < started) continue;  // the round-robin check above
    ++logged;
    if (e.status == 499) {
      ++dropped_by_wrk;
      continue;
    }
    if (e.retried && e.status == 200) ++retried;
    if (e.status == 200 && e.at > events) ++served_after[e.last];
    if (e.status == 200) continue;
    if (e.last == term_node || e.last == kill_node)
      ++failed[e.last];
    else
      ++failed_elsewhere;
  }
  std::ostringstream r;
  r << "fleet: wrk " << total << " calls, " << non2xx << " non-2xx, " << socket_errors
    << " socket errors; nginx logged " << logged << ", " << retried
    << " moved to another node after a refused connection, failed from the SIGTERM "
    << failed[term_node] << ", from the SIGKILL " << failed[kill_node] << ", elsewhere "
    << failed_elsewhere << ", dropped by wrk at its end " << dropped_by_wrk
    << "; served after the events by the node left " << served_after[live_node];
  const auto report = r.str();
  INFO(report);
  WARN(report);
  CHECK(total > 100);
  CHECK(socket_errors == 0);  // nginx answers every call, failed ones with 502
  CHECK(failed[term_node] == 0);
  CHECK(failed[kill_node] <= PostLoad::kConnections);
  CHECK(failed_elsewhere == 0);
  CHECK(non2xx == failed[term_node] + failed[kill_node] + failed_elsewhere);
  CHECK(served_after[live_node] > 0);  // the one node left carried the load
}

TEST_CASE("fleet: three nodes behind HAProxy under wrk, one stopped with SIGTERM: no failed call") {
  need_tool("haproxy");
  need_tool("wrk");
  Daemon a("", "", "a"), b("", "", "b"), c("", "", "c");
  Haproxy lb({a.port(), b.port(), c.port()});
  PostLoad load(lb.url("/function/hello"), 8);
  std::this_thread::sleep_for(4s);
  b.signal(SIGTERM);
  const auto wrk = load.finish();
  INFO(wrk.run.out);
  REQUIRE(wrk.run.status == 0);
  CHECK(b.wait_log("unifnd: stopped"));
  WARN("fleet behind HAProxy: wrk " << wrk.calls << " calls, " << wrk.non2xx << " non-2xx, "
                                    << wrk.socket_errors << " socket errors");
  CHECK(wrk.calls > 100);
  CHECK(wrk.non2xx == 0);
  CHECK(wrk.socket_errors == 0);
}
