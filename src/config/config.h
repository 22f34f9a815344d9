// Typed configuration: the daemon file and one YAML drop-in per function, with checked values.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace unifn::config {

// A configuration error. Each message is a sentence "<file>:<line>: <key>: <what is wrong>";
// what() holds them all, one a line, and errors() each on its own.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(const std::string& message);
  explicit ConfigError(std::vector<std::string> errors);
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::vector<std::string> errors_;
};

inline constexpr const char* kSystemConfigFile = "/etc/unifn/unifn.yaml";
inline constexpr const char* kEmbeddedSource = "(embedded default)";
// The accelerator backends the daemon knows, in its default order of preference.
inline constexpr std::array<std::string_view, 2> kKnownBackends = {"cuda", "cpu"};
// Where guests run: auto takes KVM when it works, else the sandbox (vmm::choose_platform).
inline constexpr std::array<std::string_view, 3> kKnownPlatforms = {"auto", "kvm", "sandbox"};

struct Limits {
  std::uint64_t max_body_bytes = 6291456;
  std::uint64_t max_queue = 1024;
  std::uint64_t max_header_bytes = 16384;
  std::uint64_t read_timeout_ms = 30000;
  std::uint64_t idle_timeout_ms = 60000;
  std::uint64_t shutdown_grace_ms = 10000;
  std::uint64_t async_results_max = 1000;
  std::uint64_t async_results_ttl_s = 600;
  // 0 in these four: derived at start from the open-file limit and the machine's memory (see
  // derive_limits).
  std::uint64_t max_connections = 0;
  std::uint64_t max_connections_per_client = 0;
  std::uint64_t reserved_descriptors = 0;  // kept free for instances, snapshots and state files
  std::uint64_t guest_memory_mb = 0;       // memory_mb summed over every instance held at once
  std::uint64_t async_results_max_bytes = 256ull << 20;  // the results kept for GET /v1/calls/{id}
  std::uint64_t max_queue_bytes = 256ull << 20;  // request bodies waiting in all queues together
  bool operator==(const Limits&) const = default;
};

// The limits as the daemon applies them on this machine: what 0 stands for, worked out.
struct EffectiveLimits {
  std::uint64_t max_connections = 0;
  std::uint64_t max_connections_per_client = 0;
  std::uint64_t reserved_descriptors = 0;
  std::uint64_t descriptor_ceiling =
      0;  // open_files - reserved_descriptors: the reserve starts here
  std::uint64_t guest_memory_mb = 0;
  std::vector<std::string> notes;  // a sentence for each value lowered to fit, to log once at start
};
// From the soft open-file limit the daemon runs with and the machine's memory in bytes:
//   reserved_descriptors  a quarter of open_files, from 64 to 4096 (at most half of open_files)
//   max_connections       open_files - reserved_descriptors, at most 16384 (lowered to that when
//   set higher) max_connections_per_client  max_connections / 8, at least 16 (at most
//   max_connections) guest_memory_mb       three quarters of the memory
EffectiveLimits derive_limits(const Limits& limits, std::uint64_t open_files,
                              std::uint64_t memory_bytes);

// Where async results may be POSTed (X-Callback-Url).
struct CallbackSettings {
  // CIDR ranges, addresses, or `public` (every address outside loopback, link-local, private and
  // other special ranges): the default refuses loopback, link-local (cloud metadata) and private
  // destinations. Checked against each address a callback URL's host resolves to.
  std::vector<std::string> allow = {"public"};
  std::uint64_t resolve_timeout_ms = 2000;  // a host name that takes longer fails that attempt
  bool operator==(const CallbackSettings&) const = default;
};

// The provider API (/system/* writes): who may call it, and what a daemon on a non-loopback
// address without credentials does.
struct ProviderSettings {
  // Holds basic-auth-user and basic-auth-password (as OpenFaaS reads them); empty:
  // $CREDENTIALS_DIRECTORY (systemd's LoadCredential=) when set.
  std::string credentials_dir;
  // Serve /system/* without credentials on a non-loopback address (refused at start otherwise).
  bool allow_unauthenticated = false;
  bool operator==(const ProviderSettings&) const = default;
};

struct DaemonConfig {
  std::string host = "127.0.0.1";  // an IP address literal, without brackets for IPv6
  std::uint16_t port = 8080;       // 0: any free port
  std::string state_dir;           // absolute; empty when no default could be found (then refused)
  std::vector<std::string> functions_dirs;  // absolute, in override order (later wins)
  std::string images_dir;  // absolute; empty: images/ under state_dir (see images_directory)
  ProviderSettings provider;
  Limits limits;
  CallbackSettings callbacks;
  std::vector<std::string> accel_backends = {"cuda", "cpu"};  // in order of preference
  std::string log_level = "info";                             // debug, info, warning or error
  std::uint64_t io_threads = 2;
  std::string platform = "auto";         // auto, kvm or sandbox
  std::string source = kEmbeddedSource;  // the file it came from

  // host:port as a user writes it: "[::1]:8080" for IPv6.
  std::string listen() const;
};

// What a function's VM is made of, as its drop-in says: with the daemon's platform, accel.backends
// and limits.max_body_bytes it makes the VM's identity (vmm::VmIdentity), which names its snapshot.
// A change takes a new snapshot and a new pool.
struct VmSettings {
  std::string image;  // absolute, or as written when the drop-in's own path was relative
  std::uint64_t memory_mb = 64;
  std::vector<std::string> accel = {"cpu"};              // in order of preference
  std::vector<std::pair<std::string, std::string>> env;  // in file order, keys unique
  std::string cmdline;
  bool operator==(const VmSettings&) const = default;
};

// How a function's pool serves it (with the daemon's limits.max_queue): a reload applies a change
// to the live pool, with no new snapshot (a change of isolation takes a new pool, same snapshot).
struct PoolSettings {
  std::uint64_t timeout_ms = 5000;
  std::uint64_t min_warm = 1;
  std::uint64_t max_instances = 4;
  std::string isolation = "per-request";  // or "reuse"
  bool operator==(const PoolSettings&) const = default;
};

// What a drop-in says about a function that changes neither its VM nor its pool: the provider
// API's labels and annotations, kept to be shown back.
struct FunctionMeta {
  std::vector<std::pair<std::string, std::string>> labels;       // in file order, keys unique
  std::vector<std::pair<std::string, std::string>> annotations;  // in file order, keys unique
  bool operator==(const FunctionMeta&) const = default;
};

// A new setting goes in vm or in pool, never here beside them: test_function_config's
// "every setting is in vm or pool" fails to compile when a member is added at this level.
struct FunctionConfig {
  std::string name;
  VmSettings vm;
  PoolSettings pool;
  FunctionMeta meta;                 // neither VM nor pool: shown back, changes nothing served
  std::string source;                // the drop-in file
  std::map<std::string, int> lines;  // the line of each key written in `source`, for messages
};

// Where the provider API writes its drop-ins (read after every functions_dirs entry), its scales
// and, by default, its images: under the state directory, writable under ProtectSystem=strict.
std::string provider_functions_dir(const DaemonConfig& d);
std::string images_directory(const DaemonConfig& d);
// The warm instances set by POST /system/scale-function, by function name: kept in the state
// directory, over min_warm, for hand-written functions too.
std::string scales_file(const DaemonConfig& d);

struct ListenAddress {
  std::string host;
  std::uint16_t port = 0;
};
// "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:0"; nullopt for anything else (host names included:
// the listener binds IP addresses only).
std::optional<ListenAddress> parse_listen(std::string_view text);

// Why dir cannot be the daemon's state directory, as a sentence naming it; nullopt when it can.
// Empty (no default found), or an existing directory that is not ours: owned by another user,
// writable by group or others, a symbolic link someone else owns, or under a directory another
// user could rename it in (owned by someone other than us or root, or writable by others and not
// sticky like /tmp). A directory that does not exist yet is fine: it is created with mode 0700.
std::optional<std::string> state_dir_problem(const std::string& dir);

// Parses and checks a daemon file; throws ConfigError with every problem found. Keys left out
// take the defaults of embedded_default() (functions_dirs: /usr/lib/unifn/functions.d and
// /etc/unifn/functions.d). Relative paths are resolved against the file's directory.
DaemonConfig load_daemon_config(const std::filesystem::path& file);

// What unifnd runs on with no file: 127.0.0.1:8080, a state directory it can write (never under
// /tmp: $STATE_DIRECTORY, /var/lib/unifn when writable, $XDG_STATE_HOME/unifn, ~/.local/state/unifn
// from $HOME or the password database; else empty, which the daemon refuses with a sentence), and
// the drop-ins of a build tree (<exe_dir>/functions.d, if present) then of the installed system.
DaemonConfig embedded_default(const std::filesystem::path& exe_dir);

// The directory of the running executable, or empty if /proc/self/exe cannot be read.
std::filesystem::path current_exe_dir();

// --config FILE if given (it must exist), else system_file if it exists, else embedded_default().
// Throws ConfigError.
DaemonConfig resolve_config(const std::optional<std::filesystem::path>& cli_path,
                            const std::filesystem::path& exe_dir = current_exe_dir(),
                            const std::filesystem::path& system_file = kSystemConfigFile);

// One drop-in file; throws ConfigError with every problem found in it.
FunctionConfig load_function(const std::filesystem::path& file);

struct DropinSet {
  std::vector<FunctionConfig> functions;  // in file-name order
  std::vector<std::string> errors;  // sentences naming file, line and key; those files were skipped
};

// systemd's drop-in rules over `dirs`: every *.yaml file (dotfiles, backups, other extensions and
// directories are ignored); a file in a later directory replaces a same-named one in an earlier
// directory, and a symlink to /dev/null masks it; the union is loaded in file-name order. A broken
// file is reported and skipped; a function name defined again is reported naming both files, and
// the first file stays. Missing directories are fine.
DropinSet load_dropins(const std::vector<std::filesystem::path>& dirs);
DropinSet load_dropins(const std::vector<std::string>& dirs);

struct FullConfig {
  DaemonConfig daemon;
  DropinSet dropins;
};
// The drop-ins of daemon.functions_dirs, next to the daemon configuration.
FullConfig load_full(const DaemonConfig& daemon);
// resolve_config() then its drop-ins. Throws ConfigError when the daemon file is wrong; drop-in
// problems land in dropins.errors.
FullConfig load_full(const std::optional<std::filesystem::path>& cli_path,
                     const std::filesystem::path& exe_dir = current_exe_dir());

// Every error that keeps a set from serving (for check-config, and for a reload, which must
// change nothing unless this is empty): the drop-in errors, then images that are missing,
// unreadable or not ELF files, unknown or repeated backends, names defined twice, bad ranges.
std::vector<std::string> validate_strict(const FullConfig& full);

}  // namespace unifn::config
