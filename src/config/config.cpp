// The daemon file, the embedded default, and which of them a start uses.
#include "src/config/config.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>
#include <fmt/format.h>

#include "src/config/checks.h"
#include "src/config/yaml_reader.h"

namespace unifn::config {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kInstalledDropinDirs = {"/usr/lib/unifn/functions.d",
                                                       "/etc/unifn/functions.d"};

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// True when dir exists and is writable, or could be created by us (its nearest existing parent is).
bool usable_dir(const fs::path& dir) {
  std::error_code ec;
  for (fs::path p = dir; !p.empty(); p = p.parent_path()) {
    if (fs::exists(p, ec)) return fs::is_directory(p, ec) && ::access(p.c_str(), W_OK | X_OK) == 0;
    if (p == p.parent_path()) break;
  }
  return false;
}

std::string default_state_dir() {
  // systemd's StateDirectory= passes a colon-separated list; ours is the first.
  if (auto s = env_or_empty("STATE_DIRECTORY"); !s.empty()) return s.substr(0, s.find(':'));
  if (usable_dir("/var/lib/unifn")) return "/var/lib/unifn";
  // XDG wants absolute paths; a relative one is to be ignored.
  if (auto x = env_or_empty("XDG_STATE_HOME"); !x.empty() && x[0] == '/')
    return (fs::path(x) / "unifn").string();
  if (auto h = env_or_empty("HOME"); !h.empty() && h[0] == '/')
    return (fs::path(h) / ".local/state/unifn").string();
  // No $HOME (a service started without one): the home the password database gives.
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &found) == 0 && found &&
      found->pw_dir && found->pw_dir[0] == '/' && std::string_view(found->pw_dir) != "/" &&
      usable_dir(found->pw_dir))
    return (fs::path(found->pw_dir) / ".local/state/unifn").string();
  // Never a directory under /tmp, where another user could have made it first: none at all, which
  // the daemon refuses with a sentence (state_dir_problem) until state_dir or --state-dir names
  // one.
  return "";
}

// Relative paths in a file mean "next to this file", as they do for a drop-in's image.
std::string beside(const fs::path& file, const std::string& path) {
  if (fs::path(path).is_absolute()) return fs::path(path).lexically_normal().string();
  std::error_code ec;
  auto dir = fs::absolute(file, ec).parent_path();
  if (ec) dir = file.parent_path();
  return (dir / path).lexically_normal().string();
}

void read_number(MapReader& r, const std::string& key, checks::Range range, std::uint64_t& out) {
  if (auto v = r.num(key, range.lo, range.hi)) out = *v;
}

}  // namespace

ConfigError::ConfigError(const std::string& message)
    : std::runtime_error(message), errors_{message} {}

ConfigError::ConfigError(std::vector<std::string> errors)
    : std::runtime_error(fmt::format("{}", fmt::join(errors, "\n"))), errors_(std::move(errors)) {}

std::string DaemonConfig::listen() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

std::string provider_functions_dir(const DaemonConfig& d) {
  return (fs::path(d.state_dir) / "provider" / "functions.d").string();
}

std::string images_directory(const DaemonConfig& d) {
  return d.images_dir.empty() ? (fs::path(d.state_dir) / "images").string() : d.images_dir;
}

std::string scales_file(const DaemonConfig& d) {
  return (fs::path(d.state_dir) / "provider" / "scales.yaml").string();
}

DaemonConfig load_daemon_config(const fs::path& file) {
  const std::string name = file.string();
  const auto root = load_map_file(name);
  std::vector<std::string> errors;
  MapReader r(root, name, errors);
  DaemonConfig c;
  c.source = name;
  c.state_dir = default_state_dir();
  c.functions_dirs = kInstalledDropinDirs;

  if (r.has("listen") && root["listen"].IsSequence()) {
    // An unquoted [::1]:8080 reads as a YAML list.
    r.str("listen");
    r.error("listen", "an IPv6 address must be quoted, as in listen: '[::1]:8080'");
  } else if (auto v = r.str("listen")) {
    if (auto bad = checks::listen(*v)) {
      r.error("listen", *bad);
    } else {
      auto a = parse_listen(*v);
      c.host = a->host;
      c.port = a->port;
    }
  }
  if (auto v = r.str("state_dir")) {
    if (v->empty())
      r.error("state_dir", "must not be empty");
    else
      c.state_dir = beside(file, *v);
  }
  if (auto v = r.str("images_dir")) {
    if (v->empty())
      r.error("images_dir", "must not be empty");
    else
      c.images_dir = beside(file, *v);
  }
  if (auto p = r.sub("provider")) {
    if (auto v = p->str("credentials_dir")) {
      if (v->empty())
        p->error("credentials_dir", "must not be empty");
      else
        c.provider.credentials_dir = beside(file, *v);
    }
    if (auto v = p->str("allow_unauthenticated")) {
      if (*v != "true" && *v != "false")
        p->error("allow_unauthenticated", fmt::format("'{}' is not true or false", *v));
      else
        c.provider.allow_unauthenticated = *v == "true";
    }
    p->finish();
  }
  std::vector<int> lines;
  if (auto v = r.list("functions_dirs", &lines)) {
    c.functions_dirs.clear();
    for (std::size_t i = 0; i < v->size(); ++i) {
      if ((*v)[i].empty())
        r.error("functions_dirs", "an item is empty; each must be a directory", lines[i]);
      else
        c.functions_dirs.push_back(beside(file, (*v)[i]));
    }
  }
  if (auto limits = r.sub("limits")) {
    read_number(*limits, "max_body_bytes", checks::kMaxBodyBytes, c.limits.max_body_bytes);
    read_number(*limits, "max_queue", checks::kMaxQueue, c.limits.max_queue);
    read_number(*limits, "max_header_bytes", checks::kMaxHeaderBytes, c.limits.max_header_bytes);
    read_number(*limits, "read_timeout_ms", checks::kTimeoutMsLong, c.limits.read_timeout_ms);
    read_number(*limits, "idle_timeout_ms", checks::kTimeoutMsLong, c.limits.idle_timeout_ms);
    read_number(*limits, "shutdown_grace_ms", checks::kShutdownGraceMs, c.limits.shutdown_grace_ms);
    read_number(*limits, "async_results_max", checks::kAsyncResultsMax, c.limits.async_results_max);
    read_number(*limits, "async_results_ttl_s", checks::kAsyncResultsTtlS,
                c.limits.async_results_ttl_s);
    read_number(*limits, "max_connections", checks::kMaxConnections, c.limits.max_connections);
    read_number(*limits, "max_connections_per_client", checks::kMaxConnections,
                c.limits.max_connections_per_client);
    read_number(*limits, "reserved_descriptors", checks::kReservedDescriptors,
                c.limits.reserved_descriptors);
    read_number(*limits, "guest_memory_mb", checks::kGuestMemoryMb, c.limits.guest_memory_mb);
    read_number(*limits, "async_results_max_bytes", checks::kBudgetBytes,
                c.limits.async_results_max_bytes);
    read_number(*limits, "max_queue_bytes", checks::kBudgetBytes, c.limits.max_queue_bytes);
    for (const auto& [key, bad] : checks::limits_consistency(c.limits)) limits->error(key, bad);
    limits->finish();
  }
  if (auto cb = r.sub("callbacks")) {
    lines.clear();
    if (auto v = cb->list("allow", &lines)) {
      bool ok = true;
      for (std::size_t i = 0; i < v->size(); ++i)
        if (auto bad = checks::callback_allow((*v)[i]))
          cb->error("allow", *bad, lines[i]), ok = false;
      if (ok) c.callbacks.allow = *v;
    }
    read_number(*cb, "resolve_timeout_ms", checks::kResolveTimeoutMs,
                c.callbacks.resolve_timeout_ms);
    cb->finish();
  }
  if (auto accel = r.sub("accel")) {
    lines.clear();
    if (auto v = accel->list("backends", &lines)) {
      bool ok = true;
      for (std::size_t i = 0; i < v->size(); ++i)
        if (auto bad = checks::backend((*v)[i]))
          accel->error("backends", *bad, lines[i]), ok = false;
      if (ok) {
        if (auto bad = checks::backend_list(*v))
          accel->error("backends", *bad);
        else
          c.accel_backends = *v;
      }
    }
    accel->finish();
  }
  if (auto v = r.str("log_level")) {
    if (auto bad = checks::log_level(*v))
      r.error("log_level", *bad);
    else
      c.log_level = *v;
  }
  read_number(r, "io_threads", checks::kIoThreads, c.io_threads);
  if (auto v = r.str("platform")) {
    if (auto bad = checks::platform(*v))
      r.error("platform", *bad);
    else
      c.platform = *v;
  }
  r.finish();
  if (!errors.empty()) {
    sort_by_line(errors, name);
    throw ConfigError(std::move(errors));
  }
  return c;
}

EffectiveLimits derive_limits(const Limits& l, std::uint64_t open_files,
                              std::uint64_t memory_bytes) {
  constexpr std::uint64_t kMaxConnectionsDefault = 16384;  // an idle connection costs some 10 KiB
  EffectiveLimits e;
  e.reserved_descriptors = l.reserved_descriptors
                               ? l.reserved_descriptors
                               : std::clamp<std::uint64_t>(open_files / 4, 64, 4096);
  if (e.reserved_descriptors > open_files / 2) {
    if (l.reserved_descriptors)
      e.notes.push_back(fmt::format(
          "limits.reserved_descriptors ({}) would leave too few of the open-file limit ({}) "
          "for connections: {} are reserved",
          l.reserved_descriptors, open_files, open_files / 2));
    e.reserved_descriptors = open_files / 2;
  }
  e.descriptor_ceiling = open_files - e.reserved_descriptors;
  e.max_connections = std::min(e.descriptor_ceiling, kMaxConnectionsDefault);
  if (l.max_connections) {
    e.max_connections = std::min(l.max_connections, e.descriptor_ceiling);
    if (e.max_connections < l.max_connections)
      e.notes.push_back(fmt::format(
          "limits.max_connections ({}) is more than the open-file limit ({}) leaves after "
          "limits.reserved_descriptors ({}): at most {} connections",
          l.max_connections, open_files, e.reserved_descriptors, e.max_connections));
  }
  e.max_connections = std::max<std::uint64_t>(e.max_connections, 1);
  e.max_connections_per_client = l.max_connections_per_client
                                     ? l.max_connections_per_client
                                     : std::max<std::uint64_t>(e.max_connections / 8, 16);
  e.max_connections_per_client = std::min(e.max_connections_per_client, e.max_connections);
  // Memory unknown (0): no budget short of the key's range.
  e.guest_memory_mb = l.guest_memory_mb   ? l.guest_memory_mb
                      : memory_bytes == 0 ? checks::kGuestMemoryMb.hi
                                          : (memory_bytes / 4 * 3) >> 20;
  return e;
}

DaemonConfig embedded_default(const fs::path& exe_dir) {
  DaemonConfig c;
  c.source = kEmbeddedSource;
  c.state_dir = default_state_dir();
  std::error_code ec;
  // A build tree: the example drop-ins sit next to the unifnd binary.
  if (!exe_dir.empty() && fs::is_directory(exe_dir / "functions.d", ec))
    c.functions_dirs.push_back((exe_dir / "functions.d").lexically_normal().string());
  c.functions_dirs.insert(c.functions_dirs.end(), kInstalledDropinDirs.begin(),
                          kInstalledDropinDirs.end());
  return c;
}

fs::path current_exe_dir() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

DaemonConfig resolve_config(const std::optional<fs::path>& cli_path, const fs::path& exe_dir,
                            const fs::path& system_file) {
  std::error_code ec;
  if (cli_path) {
    if (fs::status(*cli_path, ec).type() == fs::file_type::not_found)
      throw ConfigError(
          fmt::format("{}: no such configuration file (given with --config)", cli_path->string()));
    return load_daemon_config(*cli_path);
  }
  // Present but unreadable is an error, not a reason to run on the default.
  if (fs::status(system_file, ec).type() != fs::file_type::not_found)
    return load_daemon_config(system_file);
  return embedded_default(exe_dir);
}

}  // namespace unifn::config
