// The daemon file: defaults, every key, errors as file:line: key: what, the embedded default,
// resolution, the callbacks' allow list, and state directories refused when they are not ours
// alone.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <optional>

#include "src/config/config.h"
#include "test/unit/config/config_test.h"

using namespace unifn::config;
using unifn::config::test::error_of;
using unifn::config::test::TempDir;

namespace {

const std::vector<std::string> kInstalled = {"/usr/lib/unifn/functions.d",
                                             "/etc/unifn/functions.d"};

// Sets an environment variable for the life of the object, then puts back what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("a daemon file that sets one key gets the documented defaults for the rest") {
  TempDir d;
  ScopedEnv state("STATE_DIRECTORY", "/run/test-state");
  auto c = load_daemon_config(d.write("unifn.yaml", "log_level: info\n"));
  CHECK(c.host == "127.0.0.1");
  CHECK(c.port == 8080);
  CHECK(c.listen() == "127.0.0.1:8080");
  CHECK(c.state_dir == "/run/test-state");
  CHECK(c.functions_dirs == kInstalled);
  CHECK(c.limits.max_body_bytes == 6291456);
  CHECK(c.limits.max_queue == 1024);
  CHECK(c.limits.max_header_bytes == 16384);
  CHECK(c.limits.read_timeout_ms == 30000);
  CHECK(c.limits.idle_timeout_ms == 60000);
  CHECK(c.limits.shutdown_grace_ms == 10000);
  CHECK(c.limits.async_results_max == 1000);
  CHECK(c.limits.async_results_ttl_s == 600);
  CHECK(c.callbacks.allow == std::vector<std::string>{"public"});
  CHECK(c.callbacks.resolve_timeout_ms == 2000);
  CHECK(c.accel_backends == std::vector<std::string>{"cuda", "cpu"});
  CHECK(c.log_level == "info");
  CHECK(c.io_threads == 2);
  CHECK(c.platform == "auto");
  CHECK(c.source == (d / "unifn.yaml").string());
}

TEST_CASE("every key of the daemon file is read") {
  TempDir d;
  auto c = load_daemon_config(
      d.write("etc/unifn.yaml",
              "listen: 0.0.0.0:9000\n"
              "state_dir: /srv/unifn\n"
              "functions_dirs: [/opt/fns, local.d]\n"
              "limits:\n"
              "  max_body_bytes: 1000\n"
              "  max_queue: 0\n"
              "  max_header_bytes: 2048\n"
              "  read_timeout_ms: 100\n"
              "  idle_timeout_ms: 200\n"
              "  shutdown_grace_ms: 0\n"
              "  async_results_max: 7\n"
              "  async_results_ttl_s: 30\n"
              "callbacks:\n"
              "  allow: [public, 127.0.0.0/8, '::1', 10.1.0.0/16, 'fd00:1::/64']\n"
              "  resolve_timeout_ms: 500\n"
              "accel: {backends: [cpu]}\n"
              "log_level: debug\n"
              "io_threads: 4\n"
              "platform: sandbox\n"
              "images_dir: images\n"
              "provider: {credentials_dir: /etc/unifn/creds, allow_unauthenticated: true}\n"));
  CHECK(c.host == "0.0.0.0");
  CHECK(c.port == 9000);
  CHECK(c.state_dir == "/srv/unifn");
  // A relative directory means one next to the file.
  CHECK(c.functions_dirs == std::vector<std::string>{"/opt/fns", (d / "etc/local.d").string()});
  CHECK(c.limits == Limits{1000, 0, 2048, 100, 200, 0, 7, 30});
  CHECK(c.callbacks.allow ==
        std::vector<std::string>{"public", "127.0.0.0/8", "::1", "10.1.0.0/16", "fd00:1::/64"});
  CHECK(c.callbacks.resolve_timeout_ms == 500);
  CHECK(c.accel_backends == std::vector<std::string>{"cpu"});
  CHECK(c.log_level == "debug");
  CHECK(c.io_threads == 4);
  CHECK(c.platform == "sandbox");
  CHECK(c.images_dir == (d / "etc/images").string());
  CHECK(c.provider.credentials_dir == "/etc/unifn/creds");
  CHECK(c.provider.allow_unauthenticated);
  // Left out, the provider API's directories are under the state directory.
  CHECK(provider_functions_dir(c) == "/srv/unifn/provider/functions.d");
  DaemonConfig plain;
  plain.state_dir = "/srv/unifn";
  CHECK(images_directory(plain) == "/srv/unifn/images");
  CHECK(error_of([&] {
          load_daemon_config(d.write("bad.yaml", "provider:\n  allow_unauthenticated: yes\n"));
        }) == (d / "bad.yaml").string() +
                  ":2: provider.allow_unauthenticated: 'yes' is not true or false");
}

TEST_CASE("platform is auto, kvm or sandbox") {
  TempDir d;
  for (const char* p : {"auto", "kvm", "sandbox"})
    CHECK(load_daemon_config(d.write("p.yaml", fmt::format("log_level: info\nplatform: {}\n", p)))
              .platform == p);
  const auto f = (d / "bad.yaml").string();
  d.write("bad.yaml", "log_level: info\nplatform: ptrace\n");
  CHECK(error_of([&] { load_daemon_config(f); }) ==
        f + ":2: platform: 'ptrace' is not a platform (auto, kvm or sandbox)");
  CHECK(error_of([&] {
          load_daemon_config(d.write("k.yaml", "platform: [kvm]\n"));
        }).ends_with(":1: platform: must be a string, not a list"));
}

TEST_CASE("listen takes IPv4 and bracketed IPv6 addresses with a port") {
  TempDir d;
  auto c = load_daemon_config(d.write("a.yaml", "listen: '[::1]:8081'\n"));
  CHECK(c.host == "::1");
  CHECK(c.port == 8081);
  CHECK(c.listen() == "[::1]:8081");
  c = load_daemon_config(d.write("b.yaml", "listen: \"[::]:0\"\n"));
  CHECK(c.host == "::");
  CHECK(c.port == 0);
  auto a = parse_listen("10.1.2.3:65535");
  REQUIRE(a);
  CHECK(a->host == "10.1.2.3");
  CHECK(a->port == 65535);
  CHECK_FALSE(parse_listen("localhost:8080"));
  CHECK_FALSE(parse_listen("::1:8080"));
  CHECK_FALSE(parse_listen("127.0.0.1"));
  CHECK_FALSE(parse_listen("127.0.0.1:"));
  CHECK_FALSE(parse_listen(":8080"));
  CHECK_FALSE(parse_listen("[::1]8080"));
}

TEST_CASE("mistakes in the daemon file name the file, the line and the key") {
  TempDir d;
  const auto f = (d / "e.yaml").string();
  auto err = [&](const std::string& text) {
    d.write("e.yaml", text);
    return error_of([&] { load_daemon_config(f); });
  };
  const std::string ex = " (for example 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080)";
  CHECK(err("listen: nowhere\n") == f + ":1: listen: 'nowhere' is not HOST:PORT" + ex);
  CHECK(err("listen: 8080\n") == f + ":1: listen: '8080' is not HOST:PORT" + ex);
  CHECK(err("listen: localhost:8080\n") ==
        f + ":1: listen: 'localhost:8080': 'localhost' is not an IP address" + ex);
  CHECK(err("listen: 127.0.0.1:99999\n") ==
        f + ":1: listen: '127.0.0.1:99999': the port must be a number from 0 to 65535");
  CHECK(err("listen: ::1:8080\n") ==
        f + ":1: listen: '::1:8080': an IPv6 address goes in brackets, as in [::1]:8080");
  CHECK(err("listen: '[fe80::zz]:80'\n") ==
        f + ":1: listen: '[fe80::zz]:80': 'fe80::zz' is not an IPv6 address");
  CHECK(err("listen: [::1]:8080\n") ==
        f + ":1: malformed YAML: end of map not found (quote a value that starts with '[', as in "
            "listen: '[::1]:8080')");
  CHECK(err("listen: {host: a}\n") == f + ":1: listen: must be a string, not a map");
  CHECK(err("state_dir: ''\n") == f + ":1: state_dir: must not be empty");
  CHECK(err("functions_dirs: /one\n") ==
        f + ":1: functions_dirs: must be a list such as [a, b], not '/one'");
  CHECK(err("functions_dirs:\n  - /a\n  - ''\n") ==
        f + ":3: functions_dirs: an item is empty; each must be a directory");
  CHECK(err("limits: 5\n") == f + ":1: limits: must be a map of keys, not '5'");
  CHECK(err("limits:\n  max_queue: 1\n  max_body: 5\n") ==
        f + ":3: limits.max_body: unknown key (did you mean 'max_body_bytes'?)");
  CHECK(err("limits:\n  max_body_bytes: big\n") ==
        f + ":2: limits.max_body_bytes: 'big' is not a whole number (1 to 1073741824)");
  CHECK(err("limits:\n  max_queue: -1\n") ==
        f + ":2: limits.max_queue: -1 is negative; it must be 0 to 1048576");
  CHECK(err("limits:\n  max_header_bytes: 100\n") ==
        f + ":2: limits.max_header_bytes: 100 is out of range (1024 to 1048576)");
  CHECK(err("accel: [cuda]\n") == f + ":1: accel: must be a map of keys, not a list");
  CHECK(err("accel:\n  backends: [cpu, opencl]\n") ==
        f + ":2: accel.backends: 'opencl' is not an accelerator backend (cuda or cpu)");
  CHECK(err("accel:\n  backend: [cpu]\n") ==
        f + ":2: accel.backend: unknown key (did you mean 'backends'?)");
  CHECK(err("callbacks:\n  allow: [public, 10.0.0.1/8]\n") ==
        f + ":2: callbacks.allow: '10.0.0.1/8' has bits set past its /8 prefix (the range starts "
            "at 10.0.0.0)");
  CHECK(err("callbacks:\n  allow:\n    - public\n    - metadata.internal\n") ==
        f + ":4: callbacks.allow: 'metadata.internal' is not an IP address, a CIDR range (such as "
            "10.0.0.0/8 or "
            "fd00::/8) or `public`");
  CHECK(err("callbacks:\n  allow: 127.0.0.1\n") ==
        f + ":2: callbacks.allow: must be a list such as [a, b], not '127.0.0.1'");
  CHECK(err("callbacks:\n  resolve_timeout_ms: 0\n") ==
        f + ":2: callbacks.resolve_timeout_ms: 0 is out of range (1 to 60000)");
  CHECK(err("callbacks:\n  deny: [public]\n") == f + ":2: callbacks.deny: unknown key");
  CHECK(err("log_level: loud\n") ==
        f + ":1: log_level: 'loud' is not a log level (debug, info, warning or error)");
  CHECK(err("io_threads: 0\n") == f + ":1: io_threads: 0 is out of range (1 to 64)");
  CHECK(err("port: 8080\n") == f + ":1: port: unknown key");
  CHECK(err("") == f + ": is empty; a map of keys such as 'name: hello' is expected");
  CHECK(err("[a, b]\n") == f + ":1: the file must be a map of keys, not a list");
}

TEST_CASE("all the mistakes of a daemon file come in one error") {
  TempDir d;
  const auto f =
      d.write("e.yaml", "listen: nowhere\nlimits:\n  max_queue: x\nio_threads: 0\n").string();
  try {
    load_daemon_config(f);
    FAIL("no error");
  } catch (const ConfigError& e) {
    REQUIRE(e.errors().size() == 3);
    CHECK_THAT(e.errors()[0], Catch::StartsWith(f + ":1: listen: "));
    CHECK_THAT(e.errors()[1], Catch::StartsWith(f + ":3: limits.max_queue: "));
    CHECK_THAT(e.errors()[2], Catch::StartsWith(f + ":4: io_threads: "));
  }
}

TEST_CASE("the embedded default listens on loopback and serves a build tree's drop-ins") {
  TempDir d;
  ScopedEnv state("STATE_DIRECTORY", "/run/unifn-a:/run/unifn-b");
  auto c = embedded_default(d.path());
  CHECK(c.listen() == "127.0.0.1:8080");
  CHECK(c.source == "(embedded default)");
  CHECK(c.state_dir == "/run/unifn-a");   // systemd's StateDirectory=, the first of several
  CHECK(c.functions_dirs == kInstalled);  // no functions.d next to the binary
  std::filesystem::create_directories(d / "functions.d");
  c = embedded_default(d.path());
  CHECK(c.functions_dirs == std::vector<std::string>{(d / "functions.d").string(),
                                                     "/usr/lib/unifn/functions.d",
                                                     "/etc/unifn/functions.d"});
  CHECK(c.limits == Limits{});
  CHECK(c.accel_backends == std::vector<std::string>{"cuda", "cpu"});
}

TEST_CASE("the embedded state directory falls back to one the user can write") {
  ScopedEnv state("STATE_DIRECTORY", nullptr);
  ScopedEnv xdg("XDG_STATE_HOME", "/home/someone/.state");
  const auto dir = embedded_default({}).state_dir;
  // /var/lib/unifn when this user may create or write it (root, a packaged install), else XDG's.
  CHECK((dir == "/var/lib/unifn" || dir == "/home/someone/.state/unifn"));
  {
    ScopedEnv no_xdg("XDG_STATE_HOME", "relative/ignored");
    ScopedEnv home("HOME", "/home/someone");
    const auto d2 = embedded_default({}).state_dir;
    CHECK((d2 == "/var/lib/unifn" || d2 == "/home/someone/.local/state/unifn"));
  }
}

TEST_CASE(
    "which configuration: --config wins, then /etc/unifn/unifn.yaml, then the embedded default") {
  TempDir d;
  const auto cli = d.write("cli.yaml", "listen: 127.0.0.2:1\n");
  const auto sys = d.write("etc/unifn.yaml", "listen: 127.0.0.3:2\n");
  CHECK(resolve_config(cli, d.path(), sys).listen() == "127.0.0.2:1");
  CHECK(resolve_config(std::nullopt, d.path(), sys).listen() == "127.0.0.3:2");
  CHECK(resolve_config(std::nullopt, d.path(), sys).source == sys.string());
  auto c = resolve_config(std::nullopt, d.path(), d / "etc/absent.yaml");
  CHECK(c.source == "(embedded default)");
  CHECK(c.listen() == "127.0.0.1:8080");
  CHECK(error_of([&] { resolve_config(d / "none.yaml", d.path(), sys); }) ==
        (d / "none.yaml").string() + ": no such configuration file (given with --config)");
  // A broken system file stops the start rather than being passed over.
  d.write("etc/unifn.yaml", "listen: nowhere\n");
  CHECK_THAT(error_of([&] { resolve_config(std::nullopt, d.path(), sys); }),
             Catch::StartsWith(sys.string() + ":1: listen: "));
}

TEST_CASE("the default state directory is never one under /tmp") {
  ScopedEnv state("STATE_DIRECTORY", nullptr);
  ScopedEnv xdg("XDG_STATE_HOME", nullptr);
  ScopedEnv home("HOME", nullptr);
  // /var/lib/unifn when writable (root), else the password database's home, else none at all: the
  // daemon then refuses to start with a sentence, rather than use a directory another user may
  // have made first.
  const auto dir = embedded_default({}).state_dir;
  CHECK_FALSE(dir.starts_with("/tmp"));
  if (dir.empty()) CHECK(state_dir_problem(dir));
  CHECK_THAT(*state_dir_problem(""),
             Catch::StartsWith("no state directory: ") &&
                 Catch::EndsWith("set state_dir in the daemon file or pass --state-dir"));
}

TEST_CASE(
    "a state directory owned by someone else or writable by group or others is refused, naming "
    "it") {
  namespace fs = std::filesystem;
  TempDir d;  // under /tmp, which is sticky
  const auto ours = d / "state";
  fs::create_directories(ours);
  fs::permissions(d.path(), fs::perms::owner_all);
  fs::permissions(ours, fs::perms::owner_all);
  const std::string me = ::geteuid() == 0 ? "uid 0 (root)" : fmt::format("uid {}", ::geteuid());
  // An explicit directory under /tmp that is ours with mode 0700 is fine, and so is one not made
  // yet.
  CHECK(state_dir_problem(ours.string()) == std::nullopt);
  CHECK(state_dir_problem((ours / "not-yet").string()) == std::nullopt);

  fs::permissions(ours, fs::perms::all);
  CHECK_THAT(*state_dir_problem(ours.string()),
             Catch::StartsWith("refusing the state directory " + ours.string() +
                               ": its mode 0777 lets group and others write to it (owner ") &&
                 Catch::EndsWith("); chmod 700 " + ours.string()));
  fs::permissions(ours, fs::perms::owner_all | fs::perms::group_all);
  CHECK_THAT(*state_dir_problem(ours.string()),
             Catch::Contains("its mode 0770 lets its group write to it"));
  fs::permissions(ours, fs::perms::owner_all | fs::perms::others_write | fs::perms::others_exec);
  CHECK_THAT(*state_dir_problem(ours.string()),
             Catch::Contains("its mode 0703 lets others write to it"));
  fs::permissions(ours, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                            fs::perms::others_read | fs::perms::others_exec);
  CHECK(state_dir_problem(ours.string()) == std::nullopt);  // 0755: readable, writable only by us

  // The directory it lies in: writable by others and not sticky, anyone may rename ours away.
  fs::permissions(d.path(), fs::perms::all);
  CHECK(*state_dir_problem(ours.string()) ==
        "refusing the state directory " + ours.string() + ": it lies in " + d.path().string() +
            " (mode 0777), which others may write and which is not sticky like /tmp");
  CHECK_THAT(*state_dir_problem((ours / "not-yet").string()),
             Catch::Contains("it lies in " + d.path().string()));
  fs::permissions(d.path(), fs::perms::all | fs::perms::sticky_bit);
  CHECK(state_dir_problem(ours.string()) == std::nullopt);  // like /tmp
  fs::permissions(d.path(), fs::perms::owner_all);

  // validate_strict (check-config, a reload) says the same.
  fs::permissions(ours, fs::perms::all);
  FullConfig full{embedded_default({}), {}};
  full.daemon.state_dir = ours.string();
  full.daemon.callbacks.allow = {"public", "10.0.0.1/8"};
  const auto errors = validate_strict(full);
  REQUIRE(errors.size() == 2);
  CHECK_THAT(errors[0],
             Catch::StartsWith("(embedded default): state_dir: refusing the state directory " +
                               ours.string() + ": its mode 0777"));
  CHECK(errors[1] ==
        "(embedded default): callbacks.allow: '10.0.0.1/8' has bits set past its /8 prefix (the "
        "range "
        "starts at 10.0.0.0)");
  fs::permissions(ours, fs::perms::owner_all);

  if (::geteuid() != 0) {
    WARN(
        "not root: the checks of directories and links another user owns need chown, and are "
        "skipped");
    return;
  }
  constexpr uid_t kOther = 65534;
  REQUIRE(::chown(ours.c_str(), kOther, kOther) == 0);
  CHECK_THAT(*state_dir_problem(ours.string()),
             Catch::StartsWith("refusing the state directory " + ours.string() +
                               ": it is owned by uid 65534") &&
                 Catch::Contains("and unifnd runs as " + me));
  REQUIRE(::chown(ours.c_str(), 0, 0) == 0);
  // A parent another user owns could have ours replaced.
  REQUIRE(::chown(d.path().c_str(), kOther, kOther) == 0);
  CHECK_THAT(*state_dir_problem(ours.string()),
             Catch::Contains("it lies in " + d.path().string() + ", which is owned by uid 65534"));
  REQUIRE(::chown(d.path().c_str(), 0, 0) == 0);
  // A symbolic link another user owns can be pointed elsewhere at any time.
  const auto link = d / "link";
  fs::create_directory_symlink(ours, link);
  CHECK(state_dir_problem(link.string()) == std::nullopt);  // our own link to our own directory
  REQUIRE(::lchown(link.c_str(), kOther, kOther) == 0);
  CHECK_THAT(*state_dir_problem(link.string()),
             Catch::Contains(link.string() + " is a symbolic link owned by uid 65534") &&
                 Catch::EndsWith(", who can point it elsewhere"));
  CHECK_THAT(*state_dir_problem((link / "sub").string()),
             Catch::Contains("is a symbolic link owned by uid 65534"));
}
