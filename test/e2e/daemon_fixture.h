// The real unifnd on a free loopback port, for end-to-end tests; and a temporary directory.
#pragma once

#include <cstdlib>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "test/e2e/process.h"
#include "test/support/temp_dir.h"

namespace unifn::test {

// The platform this test runs on (ctest sets UNIFN_PLATFORM), as a flag for the daemon, which
// reads its platform from its file and flags only.
inline std::string platform_flag(const std::string& args) {
  const char* p = std::getenv("UNIFN_PLATFORM");
  if (!p || !*p || args.find("--platform") != std::string::npos) return "";
  return std::string(" --platform ") + p;
}

class Daemon {
 public:
  // A daemon started again in the same test sees its predecessor's state directory, unless
  // state_tag differs (the nodes of a fleet run at once, each with its own); each has its own log.
  explicit Daemon(const std::string& args = "", const std::string& env = "",
                  const std::string& state_tag = "") {
    static int started = 0;
    log_ = "/tmp/unifn-e2e-" + std::to_string(getpid()) + "-" + std::to_string(started++) + ".log";
    state_ = "/tmp/unifn-e2e-state-" + std::to_string(getpid()) +
             (state_tag.empty() ? "" : "-" + state_tag);
    auto r =
        sh(env + " " + std::string(UNIFN_BUILD_DIR) + "/unifnd --listen 127.0.0.1:0 --state-dir " +
           state_ + " " + args + platform_flag(args) + " >" + log_ + " 2>&1 & echo $!");
    pid_ = std::stoi(r.out);
    for (int i = 0; i < 200 && port_.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
      std::ifstream f(log_);
      std::string text((std::istreambuf_iterator<char>(f)), {});
      std::smatch m;
      if (std::regex_search(text, m, std::regex("listening on http://127.0.0.1:([0-9]+)")))
        port_ = m[1];
    }
    REQUIRE(!port_.empty());
  }
  ~Daemon() {
    kill(pid_, SIGKILL);
    unlink(log_.c_str());
    sh("rm -rf " + state_);
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + port_ + path; }
  int port() const { return std::stoi(port_); }
  void signal(int sig) const { kill(pid_, sig); }
  pid_t pid() const { return pid_; }
  const std::string& state_dir() const { return state_; }
  std::string log() const {
    std::ifstream f(log_);
    return std::string((std::istreambuf_iterator<char>(f)), {});
  }
  // Waits until the log has grown a line containing text after its first `skip` bytes.
  bool wait_log(const std::string& text, std::size_t skip = 0) const {
    for (int i = 0; i < 400; ++i) {
      auto l = log();
      if (l.size() > skip && l.find(text, skip) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return false;
  }
  int stop() {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {
      if (kill(pid_, 0) != 0) return 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return -1;
  }

 private:
  pid_t pid_ = 0;
  std::string port_, log_, state_;
};

inline std::string curl(const std::string& args) { return sh("curl -s --max-time 10 " + args).out; }

}  // namespace unifn::test
