// The daemon file, function drop-ins under systemd's rules, and the checks a whole set must pass.
#include "config/config.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fmt/format.h>
#include <map>
#include <regex>

#include "config/yaml_reader.h"

namespace unifn::config {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kBackends = {"cuda", "cpu"};

void check_backends(MapReader& r, const YAML::Node& node, const std::string& key, const std::vector<std::string>& names) {
  for (const auto& b : names)
    if (std::find(kBackends.begin(), kBackends.end(), b) == kBackends.end())
      r.fail(node, key, fmt::format("unknown accelerator backend '{}' (cuda or cpu)", b));
}

void parse_listen(MapReader& r, const YAML::Node& node, const std::string& text, DaemonConfig& c) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) r.fail(node, "listen", "must be HOST:PORT");
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string port = text.substr(colon + 1);
  if (host.empty() || port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 || std::stoul(port) > 65535)
    r.fail(node, "listen", fmt::format("'{}' is not HOST:PORT", text));
  c.host = host;
  c.port = static_cast<std::uint16_t>(std::stoul(port));
}

std::string default_state_dir() {
  if (const char* s = getenv("STATE_DIRECTORY")) return s;
  std::error_code ec;
  fs::create_directories("/var/lib/unifn", ec);
  if (!ec && access("/var/lib/unifn", W_OK) == 0) return "/var/lib/unifn";
  if (const char* x = getenv("XDG_STATE_HOME")) return std::string(x) + "/unifn";
  if (const char* h = getenv("HOME")) return std::string(h) + "/.local/state/unifn";
  return fmt::format("/tmp/unifn-{}", getuid());
}

}  // namespace

bool FunctionConfig::same_function(const FunctionConfig& o) const {
  return name == o.name && image == o.image && memory_mb == o.memory_mb && timeout_ms == o.timeout_ms &&
         min_warm == o.min_warm && max_instances == o.max_instances && isolation == o.isolation && accel == o.accel &&
         env == o.env && cmdline == o.cmdline;
}

DaemonConfig load_daemon_config(const fs::path& file) {
  auto root = load_map_file(file.string());
  MapReader r(root, file.string());
  DaemonConfig c = embedded_default({});
  c.source = file.string();
  if (r.has("listen")) parse_listen(r, root["listen"], r.str("listen", ""), c);
  c.state_dir = r.str("state_dir", c.state_dir);
  c.functions_dirs = r.list("functions_dirs", {"/usr/lib/unifn/functions.d", "/etc/unifn/functions.d"});
  auto limits = r.sub("limits");
  c.limits.max_body_bytes = limits.num("max_body_bytes", c.limits.max_body_bytes, 1, 1ull << 30);
  c.limits.max_queue = limits.num("max_queue", c.limits.max_queue, 0, 1u << 20);
  c.limits.max_header_bytes = limits.num("max_header_bytes", c.limits.max_header_bytes, 1024, 1u << 20);
  c.limits.read_timeout_ms = limits.num("read_timeout_ms", c.limits.read_timeout_ms, 1, 3600000);
  c.limits.idle_timeout_ms = limits.num("idle_timeout_ms", c.limits.idle_timeout_ms, 1, 3600000);
  c.limits.shutdown_grace_ms = limits.num("shutdown_grace_ms", c.limits.shutdown_grace_ms, 0, 3600000);
  c.limits.async_results_max = limits.num("async_results_max", c.limits.async_results_max, 1, 1u << 20);
  c.limits.async_results_ttl_s = limits.num("async_results_ttl_s", c.limits.async_results_ttl_s, 1, 86400 * 7);
  limits.reject_unknown();
  auto accel = r.sub("accel");
  c.accel_backends = accel.list("backends", c.accel_backends);
  if (root["accel"]) check_backends(accel, root["accel"], "backends", c.accel_backends);
  accel.reject_unknown();
  c.log_level = r.str("log_level", c.log_level);
  if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warning" && c.log_level != "error")
    r.fail(root["log_level"], "log_level", fmt::format("'{}' is not debug, info, warning or error", c.log_level));
  c.io_threads = r.num("io_threads", c.io_threads, 1, 64);
  r.reject_unknown();
  return c;
}

DaemonConfig embedded_default(const fs::path& exe_dir) {
  DaemonConfig c;
  c.source = "(embedded default)";
  c.state_dir = default_state_dir();
  std::error_code ec;
  if (!exe_dir.empty() && fs::is_directory(exe_dir / "functions.d", ec)) c.functions_dirs.push_back((exe_dir / "functions.d").string());
  c.functions_dirs.push_back("/usr/lib/unifn/functions.d");
  c.functions_dirs.push_back("/etc/unifn/functions.d");
  return c;
}

DaemonConfig resolve(const std::optional<fs::path>& cli, const fs::path& exe_dir) {
  if (cli) {
    if (!fs::exists(*cli)) throw ConfigError(fmt::format("{}: no such configuration file", cli->string()));
    return load_daemon_config(*cli);
  }
  if (fs::exists("/etc/unifn/unifn.yaml")) return load_daemon_config("/etc/unifn/unifn.yaml");
  return embedded_default(exe_dir);
}

FunctionConfig load_function(const fs::path& file) {
  auto root = load_map_file(file.string());
  MapReader r(root, file.string());
  FunctionConfig f;
  f.source = file.string();
  f.name = r.str("name", "", true);
  static const std::regex kName("[a-z0-9][a-z0-9_-]{0,62}");
  if (!std::regex_match(f.name, kName))
    r.fail(root["name"], "name", fmt::format("'{}' is not a function name (a-z, 0-9, - and _, up to 63)", f.name));
  f.image = r.str("image", "", true);
  if (f.image.empty()) r.fail(root["image"], "image", "must not be empty");
  if (fs::path(f.image).is_relative()) f.image = (file.parent_path() / f.image).lexically_normal().string();
  f.memory_mb = r.num("memory_mb", f.memory_mb, 8, 3072);
  f.timeout_ms = r.num("timeout_ms", f.timeout_ms, 1, 600000);
  f.max_instances = r.num("max_instances", f.max_instances, 1, 256);
  f.min_warm = r.num("min_warm", f.min_warm, 0, 256);
  if (f.min_warm > f.max_instances)
    r.fail(root["min_warm"], "min_warm", fmt::format("{} is more than max_instances ({})", f.min_warm, f.max_instances));
  f.isolation = r.str("isolation", f.isolation);
  if (f.isolation != "per-request" && f.isolation != "reuse")
    r.fail(root["isolation"], "isolation", fmt::format("'{}' is not per-request or reuse", f.isolation));
  f.accel = r.list("accel", f.accel);
  check_backends(r, root["accel"], "accel", f.accel);
  f.env = r.string_map("env");
  static const std::regex kEnv("[A-Za-z_][A-Za-z0-9_]*");
  for (const auto& [k, v] : f.env)
    if (!std::regex_match(k, kEnv)) r.fail(root["env"], "env." + k, "is not a valid environment variable name");
  f.cmdline = r.str("cmdline", "");
  r.reject_unknown();
  return f;
}

DropinSet load_dropins(const std::vector<std::string>& dirs) {
  std::map<std::string, fs::path> by_name;  // file name -> path; later directories win
  for (const auto& dir : dirs) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const auto name = e.path().filename().string();
      if (name.empty() || name[0] == '.' || e.path().extension() != ".yaml" || !e.is_regular_file(ec)) continue;
      by_name[name] = e.path();
    }
  }
  DropinSet set;
  std::map<std::string, std::string> defined;  // function name -> file
  for (const auto& [file, path] : by_name) {
    try {
      auto f = load_function(path);
      if (auto it = defined.find(f.name); it != defined.end()) {
        set.errors.push_back(fmt::format("{}: function '{}' is already defined in {}", path.string(), f.name, it->second));
        continue;
      }
      defined[f.name] = path.string();
      set.functions.push_back(std::move(f));
    } catch (const ConfigError& e) {
      set.errors.push_back(e.what());
    }
  }
  return set;
}

std::vector<std::string> check_set(const DropinSet& set) {
  std::vector<std::string> errors = set.errors;
  for (const auto& f : set.functions) {
    if (access(f.image.c_str(), R_OK) != 0)
      errors.push_back(fmt::format("{}: image: {} cannot be read ({})", f.source, f.image, std::strerror(errno)));
  }
  return errors;
}

}  // namespace unifn::config
