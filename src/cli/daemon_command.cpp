// The daemon: functions found on the embedded default paths, pools warmed, HTTP served, systemd told.
#include "cli/daemon_command.h"

#include <signal.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <filesystem>
#include <fmt/format.h>
#include <string>
#include <vector>

#include "http/api.h"
#include "http/server.h"
#include "runtime/registry.h"

namespace unifn::cli {

namespace fs = std::filesystem;

namespace {

struct DaemonOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  std::vector<fs::path> function_dirs;
  std::string isolation = "per-request";
  std::size_t max_body_bytes = 6291456;
  unsigned max_instances = 4;
  std::string state_dir;
};

// The embedded default state directory: systemd's, the system one, the user's, or /tmp.
std::string default_state_dir() {
  if (const char* s = getenv("STATE_DIRECTORY")) return s;
  std::error_code ec;
  fs::create_directories("/var/lib/unifn", ec);
  if (!ec && access("/var/lib/unifn", W_OK) == 0) return "/var/lib/unifn";
  if (const char* x = getenv("XDG_STATE_HOME")) return std::string(x) + "/unifn";
  if (const char* h = getenv("HOME")) return std::string(h) + "/.local/state/unifn";
  return fmt::format("/tmp/unifn-{}", getuid());
}

std::uint16_t parse_port(const std::string& s) {
  std::size_t end = 0;
  int p = -1;
  try {
    p = std::stoi(s, &end);
  } catch (const std::exception&) {
  }
  if (end != s.size() || p < 0 || p > 65535) throw std::invalid_argument(fmt::format("'{}' is not a port number", s));
  return static_cast<std::uint16_t>(p);
}

// Every NAME.elf in the directories becomes function NAME (the embedded default).
std::vector<runtime::PoolConfig> discover(const DaemonOptions& o) {
  std::vector<runtime::PoolConfig> out;
  std::vector<std::string> seen;
  for (const auto& dir : o.function_dirs) {
    std::error_code ec;
    std::vector<fs::path> images;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".elf") images.push_back(e.path());
    std::sort(images.begin(), images.end());
    for (const auto& p : images) {
      std::string name = p.stem().string();
      if (std::find(seen.begin(), seen.end(), name) != seen.end()) continue;
      seen.push_back(name);
      runtime::PoolConfig c;
      c.name = name;
      c.image_path = p.string();
      c.per_request = o.isolation == "per-request";
      c.max_instances = o.max_instances;
      c.vm.max_body_bytes = o.max_body_bytes;
      c.state_dir = o.state_dir;
      c.log = [](const std::string& fn, const std::string& call, std::string_view line) {
        fmt::print(stderr, "{}[{}]: {}\n", fn, call.empty() ? "-" : call, line);
      };
      out.push_back(std::move(c));
    }
  }
  return out;
}

}  // namespace

int daemon_command(const char* argv0, std::span<char*> args) {
  DaemonOptions o;
  try {
    for (std::size_t i = 0; i < args.size(); ++i) {
      std::string a = args[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= args.size()) throw std::invalid_argument(a + " needs a value");
        return args[++i];
      };
      if (a == "--listen") {
        std::string v = value();
        auto colon = v.rfind(':');
        if (colon == std::string::npos) throw std::invalid_argument("--listen takes HOST:PORT");
        o.host = v.substr(0, colon);
        if (o.host.size() > 2 && o.host.front() == '[') o.host = o.host.substr(1, o.host.size() - 2);
        o.port = parse_port(v.substr(colon + 1));
      } else if (a == "--functions-dir") {
        o.function_dirs.emplace_back(value());
      } else if (a == "--isolation") {
        o.isolation = value();
        if (o.isolation != "per-request" && o.isolation != "reuse")
          throw std::invalid_argument("--isolation is per-request or reuse");
      } else if (a == "--max-body-bytes") {
        o.max_body_bytes = std::stoul(value());
      } else if (a == "--state-dir") {
        o.state_dir = value();
      } else if (a == "--max-instances") {
        o.max_instances = static_cast<unsigned>(std::stoul(value()));
      } else {
        throw std::invalid_argument(fmt::format("unknown option {}", a));
      }
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "unifnd: {}\nusage: unifnd [--listen HOST:PORT] [--functions-dir DIR]... [--isolation per-request|reuse]\n", e.what());
    return 2;
  }
  if (o.function_dirs.empty()) {
    std::error_code ec;
    fs::path exe = fs::canonical(fs::path("/proc/self/exe"), ec);
    if (!ec) o.function_dirs.push_back(exe.parent_path() / "functions");
    o.function_dirs.emplace_back("/usr/lib/unifn/functions");
  }
  (void)argv0;
  if (o.state_dir.empty()) o.state_dir = default_state_dir();

  // Signals are taken synchronously by this thread; every other thread inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  runtime::Registry registry;
  std::vector<std::string> errors;
  registry.load(discover(o), errors);
  for (const auto& e : errors) fmt::print(stderr, "unifnd: {}\n", e);
  http::Api api(registry);
  http::ServerOptions so;
  so.host = o.host;
  so.port = o.port;
  so.max_body_bytes = o.max_body_bytes;
  http::Server server(so, api);
  try {
    server.start();
  } catch (const std::exception& e) {
    fmt::print(stderr, "unifnd: {}\n", e.what());
    return 1;
  }
  auto fns = registry.functions();
  fmt::print(stderr, "unifnd: listening on http://{}:{} with {} functions:", o.host, server.port(), fns.size());
  for (const auto& f : fns) fmt::print(stderr, " {}", f.name);
  fmt::print(stderr, "\n");
  sd_notifyf(0, "READY=1\nSTATUS=serving %zu functions on %s:%u", fns.size(), o.host.c_str(), server.port());

  for (;;) {
    int sig = 0;
    if (sigwait(&sigs, &sig) != 0) continue;
    if (sig == SIGHUP) {
      sd_notify(0, "RELOADING=1");
      std::vector<std::string> errs;
      registry.load(discover(o), errs);
      for (const auto& e : errs) fmt::print(stderr, "unifnd: reload: {}\n", e);
      sd_notifyf(0, "READY=1\nSTATUS=serving %zu functions", registry.functions().size());
      continue;
    }
    fmt::print(stderr, "unifnd: {} received, draining\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    sd_notify(0, "STOPPING=1");
    api.set_shutting_down();
    registry.shutdown(std::chrono::seconds(10));
    server.stop();
    return 0;
  }
}

}  // namespace unifn::cli
