// A fleet on one machine: three unifnd nodes behind nginx, configured from configs/fleet: a
// function deployed to each through the provider API is reached on all three; then wrk's load
// while one node is stopped with SIGTERM and another killed; and the shipped balancer
// configurations pass their tools' checks.
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
// The node addresses and the listening address the shipped nginx.conf names.
const std::vector<std::string> kShippedNodes = {"127.0.0.1:8081", "127.0.0.1:8082",
                                                "127.0.0.1:8083"};
const std::string kShippedListen = "listen 127.0.0.1:8080;";

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

// nginx as this test's own process, from the shipped nginx.conf with the nodes' and its own
// ports put in; its pid, logs and temporary files under a directory of its own (no root needed).
class Nginx {
 public:
  explicit Nginx(const std::vector<int>& node_ports) : port_(free_port()) {
    std::filesystem::create_directories(prefix_ / "logs");
    std::filesystem::create_directories(prefix_ / "tmp");
    auto conf = read_file(kConfigs + "/nginx.conf");
    REQUIRE(conf.find(kShippedListen) != std::string::npos);
    conf = replace_all(conf, kShippedListen, "listen 127.0.0.1:" + std::to_string(port_) + ";");
    for (std::size_t i = 0; i < kShippedNodes.size(); ++i) {
      REQUIRE(conf.find(kShippedNodes[i]) != std::string::npos);
      conf = replace_all(conf, kShippedNodes[i], "127.0.0.1:" + std::to_string(node_ports.at(i)));
    }
    conf_ = prefix_.write("nginx.conf", conf).string();
    const auto checked = sh(command("-t") + " 2>&1");
    INFO(checked.out);
    REQUIRE(checked.status == 0);
    pid_ = std::stoi(
        sh(command("-g 'daemon off;'") + " >" + prefix_.str() + "/logs/stdout.log 2>&1 & echo $!")
            .out);
    for (int i = 0; i < 200 && curl(url("/healthz")) != "OK\n"; ++i)
      std::this_thread::sleep_for(25ms);
    REQUIRE(curl(url("/healthz")) == "OK\n");
  }
  ~Nginx() {
    kill(pid_, SIGQUIT);
    for (int i = 0; i < 200 && kill(pid_, 0) == 0; ++i) std::this_thread::sleep_for(25ms);
    kill(pid_, SIGKILL);
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::string access_log() const { return read_file(prefix_ / "logs/access.log"); }

 private:
  std::string command(const std::string& extra) const {
    return "nginx -p " + prefix_.str() + "/ -c " + conf_ + " " + extra;
  }
  TempDir prefix_{"unifn-nginx"};
  int port_;
  std::string conf_;
  pid_t pid_ = 0;
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

std::uint64_t number_after(const std::string& text, const std::string& pattern) {
  std::smatch m;
  return std::regex_search(text, m, std::regex(pattern)) ? std::stoull(m[1]) : 0;
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

  TempDir work("unifn-fleet");
  // Invocations are POSTs, which nginx never sends to a second node once sent to one.
  const auto script = work.write("post.lua", "wrk.method = \"POST\"\nwrk.body = \"fleet\"\n");
  constexpr int kConnections = 16;
  const auto started = now_s();
  auto load = std::async(std::launch::async, [&] {
    return sh("wrk -t2 -c" + std::to_string(kConnections) + " -d20s --timeout 10s -s " +
              script.string() + " " + lb.url("/function/hello") + " 2>&1");
  });
  std::this_thread::sleep_for(10s);
  const auto events = now_s();
  c.signal(SIGKILL);  // its calls in flight fail; nginx moves the rest
  // The node to stop is paused a moment first, as a busy node would be: the calls nginx sends it
  // meanwhile wait in its accept queue when SIGTERM arrives, and must be answered.
  b.signal(SIGSTOP);
  std::this_thread::sleep_for(200ms);
  b.signal(SIGTERM);
  b.signal(SIGCONT);
  const auto wrk = load.get();
  INFO(wrk.out);
  REQUIRE(wrk.status == 0);
  CHECK(b.wait_log("unifnd: stopped"));

  const auto total = number_after(wrk.out, R"(([0-9]+) requests in)");
  const auto non2xx = number_after(wrk.out, R"(Non-2xx or 3xx responses: ([0-9]+))");
  std::smatch se;
  std::uint64_t socket_errors = 0;
  if (std::regex_search(wrk.out, se,
                        std::regex(R"(Socket errors: connect ([0-9]+), read ([0-9]+), write )"
                                   R"(([0-9]+), timeout ([0-9]+))")))
    for (int i = 1; i <= 4; ++i) socket_errors += std::stoull(se[i]);

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
  CHECK(failed[kill_node] <= kConnections);
  CHECK(failed_elsewhere == 0);
  CHECK(non2xx == failed[term_node] + failed[kill_node] + failed_elsewhere);
  CHECK(served_after[live_node] > 0);  // the one node left carried the load
}
