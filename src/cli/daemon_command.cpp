// The daemon: configuration and drop-ins loaded, pools warmed, HTTP served, systemd told; and
// check-config.
#include "src/cli/daemon_command.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <prometheus/counter.h>

#include "accel/device.h"
#include "accel/registry.h"
#include "src/cli/flags.h"
#include "src/cli/signals.h"
#include "src/config/config.h"
#include "vmm/devices/console.h"
#include "src/http/api.h"
#include "src/http/provider/provider.h"
#include "src/config/provider_state.h"
#include "src/http/server.h"
#include "src/log/log.h"
#include "src/metrics/metrics.h"
#include "src/runtime/accel_choice.h"
#include "src/runtime/registry.h"
#include "vmm/snapshot/snapshot_store.h"
#include "src/systemd/notifier.h"

namespace unifn::cli {

namespace fs = std::filesystem;

namespace {

// The file's log_level was checked when it was read.
log::Level log_level(const config::DaemonConfig& d) {
  return log::parse_level(d.log_level).value_or(log::Level::info);
}

// One line of a function's (its guest's console, the pool's and the VMM's notes) in the daemon's
// log. It only queues the line for the logger's writer thread: on a vCPU thread it neither blocks
// nor throws.
void function_line(log::Level level, const std::string& fn, const std::string& call,
                   std::string_view line) noexcept {
  log::global().write(level, "{}[{}]: {}", fn, call.empty() ? "-" : call, line);
  http::provider::LogRing::global().add(fn, call.empty() ? "-" : call, line);  // /system/logs
}

config::DaemonConfig daemon_config(const DaemonOptions& o) {
  auto c = config::resolve_config(o.config);
  if (o.listen) {
    // Checked as the file's listen when the command line was parsed (listen_setting).
    const auto at = config::parse_listen(*o.listen);
    if (!at) throw config::ConfigError(fmt::format("--listen: '{}' is not HOST:PORT", *o.listen));
    c.host = at->host;
    c.port = at->port;
  }
  if (o.state_dir) c.state_dir = *o.state_dir;
  if (!o.functions_dirs.empty()) c.functions_dirs = o.functions_dirs;
  if (o.platform) c.platform = *o.platform;
  // The provider API's drop-ins are read last: they never replace a hand-written file (it refuses).
  if (!c.state_dir.empty()) c.functions_dirs.push_back(config::provider_functions_dir(c));
  return c;
}

// The function's virtio-accel device on the backend chosen for it, or the reason it cannot run
// here.
accel::Selection attach_accel(runtime::PoolConfig& c, const config::FunctionConfig& f,
                              const config::DaemonConfig& d, metrics::Metrics& m) {
  auto sel = runtime::choose_accel(f.vm.accel, d.accel_backends, accel::BackendRegistry::global());
  if (!sel.backend) {
    c.unavailable = sel.error;
    return sel;
  }
  accel::DeviceOptions o;
  // Each device gets its own copy of this lambda and calls it from one vCPU thread at a time, so
  // its cache of counters (one per op name) needs no lock.
  o.on_op = [&m, cache = std::vector<std::pair<std::string, prometheus::Counter*>>()](
                std::string_view backend, std::string_view op) mutable {
    for (auto& [name, counter] : cache)
      if (name == op) return counter->Increment();
    cache.emplace_back(op, &m.accel_op_counter(backend, op));
    cache.back().second->Increment();
  };
  o.on_error = [name = f.name](std::string_view what) {
    function_line(log::Level::warning, name, "", fmt::format("[accel] {}", what));
  };
  c.accel_backend = std::string(sel.backend->name());
  c.vm.devices.push_back(accel::device_factory(sel.backend, std::move(o)));
  c.vm.device_key = "accel:" + c.accel_backend;
  return sel;
}

runtime::PoolConfig pool_config(const config::FunctionConfig& f, const config::DaemonConfig& d,
                                vmm::Platform& platform, metrics::Metrics& m) {
  runtime::PoolConfig c;
  c.name = f.name;
  // f.vm and the daemon's platform, max_body_bytes and accel.backends (attach_accel): the VM.
  c.image_path = f.vm.image;
  c.vm.platform = &platform;
  c.vm.memory_bytes = f.vm.memory_mb << 20;
  c.vm.max_body_bytes = d.limits.max_body_bytes;
  c.vm.cmdline = f.vm.cmdline;
  c.vm.env = f.vm.env;
  c.accel = f.vm.accel;
  // f.pool and the daemon's max_queue: what a reload applies to a live pool.
  c.settings.min_warm = static_cast<unsigned>(f.pool.min_warm);
  c.settings.max_instances = static_cast<unsigned>(f.pool.max_instances);
  c.settings.per_request = f.pool.isolation == "per-request";
  c.settings.timeout = std::chrono::milliseconds(f.pool.timeout_ms);
  c.settings.max_queue = d.limits.max_queue;
  c.state_dir = d.state_dir;
  // The guest's console lines are info; the pool's and the VMM's own notes (Console::kVmmPrefix: a
  // failed restore or reset, an unknown syscall) are warnings. No guest line can start with the
  // prefix (Console::escape writes its '[' as \x5b), so a guest cannot raise its own lines' level.
  c.log = [](const std::string& fn, const std::string& call, std::string_view line) noexcept {
    function_line(
        line.starts_with(vmm::Console::kVmmPrefix) ? log::Level::warning : log::Level::info, fn,
        call, line);
  };
  auto sel = attach_accel(c, f, d, m);
  // Told once per pool, when its snapshot is had: a fallback is logged and counted then.
  c.on_snapshot = [&m, name = f.name, fallback = sel.fallback, from = sel.preferred,
                   to = c.accel_backend](bool from_disk) {
    m.record_snapshot(name, from_disk);
    if (fallback.empty()) return;
    function_line(log::Level::warning, name, "",
                  fmt::format("{}accelerator: {}", vmm::Console::kVmmPrefix, fallback));
    m.record_accel_fallback(name, from, to);
  };
  return c;
}

// Snapshots no function uses any more (changed images, removed functions) leave the state
// directory.
void collect_snapshots(const runtime::Registry& registry, const std::string& state_dir) {
  if (state_dir.empty()) return;
  try {
    auto c = vmm::SnapshotStore(state_dir).collect_garbage(registry.snapshot_keys());
    if (c.files)
      log::info("unifnd: removed {} stale snapshot files ({:.1f} MiB) from {}", c.files,
                static_cast<double>(c.bytes) / (1 << 20), state_dir);
  } catch (const std::exception& e) {
    log::warning("unifnd: warning: stale snapshots not collected: {}", e.what());
  }
}

// The limits as they apply on this machine (its open-file limit and memory), said once in the log.
config::EffectiveLimits effective_limits(const config::Limits& l) {
  rlimit files{};
  const std::uint64_t open_files =
      getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY ? files.rlim_cur
                                                                               : 1u << 20;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  const std::uint64_t memory =
      pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page)
                            : 0;
  auto e = config::derive_limits(l, open_files, memory);
  for (const auto& note : e.notes) log::warning("unifnd: {}", note);
  log::info(
      "unifnd: limits: {} connections at most, {} per client address; {} of the {} open files kept "
      "for "
      "instances, snapshots and state files; {} MiB of guest memory",
      e.max_connections, e.max_connections_per_client, e.reserved_descriptors, open_files,
      e.guest_memory_mb);
  return e;
}

std::vector<runtime::PoolConfig> pool_configs(const config::DropinSet& set,
                                              const config::DaemonConfig& d,
                                              vmm::Platform& platform, metrics::Metrics& m) {
  std::vector<runtime::PoolConfig> out;
  const auto scales = config::load_scales(d);  // POST /system/scale-function's, over min_warm
  for (auto f : set.functions) {
    config::apply_scale(f, scales);
    out.push_back(pool_config(f, d, platform, m));
  }
  return out;
}

}  // namespace

void add_daemon_options(CLI::App& cmd, DaemonOptions& o) {
  cmd.add_option("--config", o.config,
                 "the daemon's file (default: /etc/unifn/unifnd.yaml, else the embedded default)");
  cmd.add_option("--listen", o.listen, "the address served, over the file's listen")
      ->check(listen_setting());
  cmd.add_option("--state-dir", o.state_dir, "where snapshots are kept, over the file's state_dir");
  cmd.add_option("--functions-dir", o.functions_dirs,
                 "a drop-in directory, over the file's functions_dirs (repeat for more)")
      ->allow_extra_args(false);
  cmd.add_option("--platform", o.platform, "where functions run, over the file's platform")
      ->check(platform_setting());
}

int check_config_command(const DaemonOptions& o) {
  try {
    auto d = daemon_config(o);
    auto set = config::load_dropins(d.functions_dirs);
    auto errors = config::validate_strict(config::FullConfig{d, set});
    for (const auto& e : errors) fmt::print(stderr, "unifnd check-config: {}\n", e);
    if (!errors.empty()) return 1;
    fmt::print("{}: {} functions, all valid\n", d.source, set.functions.size());
    return 0;
  } catch (const config::ConfigError& e) {
    for (const auto& line : e.errors()) fmt::print(stderr, "unifnd check-config: {}\n", line);
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "unifnd check-config: {}\n", e.what());
    return 1;
  }
}

int daemon_command(const DaemonOptions& overrides) {
  config::DaemonConfig cfg;
  try {
    cfg = daemon_config(overrides);
  } catch (const std::exception& e) {
    fmt::print(stderr, "unifnd: {}\n", e.what());
    return 1;
  }
  // From here on the daemon's lines go through its logger, and whatever path leaves the daemon,
  // the lines queued by then are written first.
  log::global().set_level(log_level(cfg));
  struct FlushLog {
    ~FlushLog() { log::global().flush(); }
  } flush_log;
  // Before any thread of ours starts: they all inherit the blocked mask.
  SignalWaiter signals{SIGTERM, SIGINT, SIGHUP};
  // Every connection, guest process and snapshot costs descriptors: take all that the hard limit
  // (systemd's LimitNOFILE) allows rather than the 1024 a soft limit often leaves.
  if (rlimit files{}; getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &files) != 0)
      log::warning("unifnd: warning: cannot raise the open-file limit to {}", files.rlim_max);
  }
  const auto limits = effective_limits(cfg.limits);
  systemd::Notifier notify;

  // Once, for the daemon's life: pools, snapshots and the metrics all assume one platform.
  vmm::PlatformChoice platform;
  try {
    platform = vmm::choose_platform(cfg.platform);
  } catch (const std::exception& e) {
    log::error("unifnd: {}", e.what());
    return 1;
  }
  const std::string platform_name(platform.platform->name());
  // A fallback's warning already says what the platform isolates: one line either way.
  if (platform.warning.empty())
    log::info("unifnd: platform {}: {}", platform_name, platform.platform->isolation());
  else
    log::warning("unifnd: warning: {}", platform.warning);
  // Snapshots are trusted once they pass their checks: their directory must be ours alone.
  if (auto bad = config::state_dir_problem(cfg.state_dir)) {
    log::error("unifnd: {}", *bad);
    return 1;
  }

  metrics::Metrics metrics;
  metrics.set_platform(platform_name);
  for (const auto& b : accel::BackendRegistry::global().list()) {
    metrics.set_backend_available(b.name, b.available);
    if (b.available)
      log::info("unifnd: accelerator backend {} is available", b.name);
    else
      log::info("unifnd: accelerator backend {} is unavailable: {}", b.name, b.reason);
  }
  runtime::Registry registry(limits.guest_memory_mb << 20, cfg.limits.max_queue_bytes);
  auto set = config::load_dropins(cfg.functions_dirs);
  for (const auto& e : set.errors) log::warning("unifnd: skipped: {}", e);  // the others serve
  std::vector<std::string> errors;
  registry.load(pool_configs(set, cfg, *platform.platform, metrics), errors);
  for (const auto& e : errors) log::warning("unifnd: skipped: {}", e);
  collect_snapshots(registry, cfg.state_dir);

  http::CallStore calls(cfg.limits.async_results_max,
                        std::chrono::seconds(cfg.limits.async_results_ttl_s),
                        cfg.limits.async_results_max_bytes);
  http::Callbacks::Options callback_options;
  callback_options.policy =
      http::CallbackPolicy(cfg.callbacks.allow);  // checked when the file was read
  callback_options.resolve_timeout = std::chrono::milliseconds(cfg.callbacks.resolve_timeout_ms);
  http::Callbacks callbacks(callback_options);
  http::Api api(registry, metrics, calls, callbacks, platform_name);
  std::optional<http::provider::Credentials> credentials;
  try {
    credentials = http::provider::load_credentials(cfg.provider);
  } catch (const std::exception& e) {
    log::error("unifnd: {}", e.what());
    return 1;
  }
  if (auto bad = http::provider::exposure_problem(cfg, credentials.has_value())) {
    log::error("unifnd: {}", *bad);
    return 1;
  }
  // A change through the API reloads as SIGHUP does: the signal, taken by the loop below.
  http::provider::Provider provider(
      cfg, credentials, [] { ::kill(::getpid(), SIGHUP); }, &http::provider::LogRing::global());
  api.set_provider(&provider);
  http::ServerOptions so;
  so.host = cfg.host;
  so.port = cfg.port;
  so.max_body_bytes = cfg.limits.max_body_bytes;
  so.max_header_bytes = cfg.limits.max_header_bytes;
  so.read_timeout = std::chrono::milliseconds(cfg.limits.read_timeout_ms);
  so.idle_timeout = std::chrono::milliseconds(cfg.limits.idle_timeout_ms);
  so.io_threads = static_cast<unsigned>(cfg.io_threads);
  so.max_connections = limits.max_connections;
  so.max_connections_per_client = limits.max_connections_per_client;
  so.descriptor_ceiling =
      static_cast<int>(std::min<std::uint64_t>(limits.descriptor_ceiling, INT_MAX));
  so.metrics = &metrics;
  http::Server server(so, api);
  try {
    server.start();
  } catch (const std::exception& e) {
    log::error("unifnd: {}", e.what());
    return 1;
  }
  auto fns = registry.functions();
  log::info("unifnd: {} ; state in {}", cfg.source, cfg.state_dir);
  std::string names;
  for (const auto& f : fns) names += " " + f.name;
  log::info("unifnd: listening on http://{}:{} with {} functions:{}", cfg.host, server.port(),
            fns.size(), names);
  notify.ready(fmt::format("serving {} functions on {}:{} (platform {})", fns.size(), cfg.host,
                           server.port(), platform_name));
  systemd::Watchdog watchdog(notify);

  for (;;) {
    const int sig = signals.wait();
    if (sig == SIGHUP) {
      notify.reloading();
      // The whole new set is checked first; on any error the old set keeps serving.
      std::vector<std::string> problems;
      config::DropinSet next;
      config::DaemonConfig next_cfg = cfg;
      try {
        next_cfg = daemon_config(overrides);  // a changed unifn.yaml is picked up too
        next = config::load_dropins(next_cfg.functions_dirs);
        problems = config::validate_strict(config::FullConfig{next_cfg, next});
      } catch (const config::ConfigError& e) {
        problems = e.errors();
      } catch (const std::exception& e) {
        problems.push_back(e.what());
      }
      if (!problems.empty()) {
        for (const auto& p : problems) log::error("unifnd: reload refused: {}", p);
        notify.ready(fmt::format("reload refused ({} errors), still serving the old set: {}",
                                 problems.size(), problems.front()));
        continue;
      }
      std::vector<std::string> errs;
      cfg.functions_dirs = next_cfg.functions_dirs;  // the listener and limits stay until a restart
      cfg.state_dir = next_cfg.state_dir;
      if (next_cfg.callbacks.allow !=
          cfg.callbacks.allow) {  // a tighter allow list must not wait for a restart
        callbacks.set_policy(http::CallbackPolicy(next_cfg.callbacks.allow));
        cfg.callbacks.allow = next_cfg.callbacks.allow;
        log::info("unifnd: reload: callbacks.allow is now [{}]",
                  fmt::join(cfg.callbacks.allow, ", "));
      }
      if (next_cfg.log_level != cfg.log_level) {
        // Said under whichever of the two levels is lower, so that it shows when either lets info
        // through.
        const auto level = log_level(next_cfg);
        if (level < log::global().level()) log::global().set_level(level);
        log::info("unifnd: reload: log_level is now {}", next_cfg.log_level);
        log::global().set_level(level);
        cfg.log_level = next_cfg.log_level;
      }
      if (next_cfg.platform != cfg.platform)
        log::warning("unifnd: reload: platform stays {} until a restart", platform_name);
      registry.load(pool_configs(next, cfg, *platform.platform, metrics), errs);
      for (const auto& e : errs) log::warning("unifnd: reload: {}", e);
      collect_snapshots(registry, cfg.state_dir);
      log::info("unifnd: reloaded: {} functions", registry.functions().size());
      notify.ready(fmt::format("serving {} functions (platform {})", registry.functions().size(),
                               platform_name));
      continue;
    }
    log::info("unifnd: {} received, draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    notify.stopping();
    // The connections accepted or queued are served first, the listener closing behind them so
    // that a load balancer moves traffic without a failed call (Server::stop), then async calls
    // that are still queued or running get what is left of the grace.
    const auto grace = std::chrono::milliseconds(cfg.limits.shutdown_grace_ms);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    server.stop(grace);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    registry.shutdown(std::max(left, std::chrono::milliseconds(0)));
    log::info("unifnd: stopped");
    return 0;
  }
}

}  // namespace unifn::cli
