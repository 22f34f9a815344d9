// Daemon file and drop-ins: defaults, every key, each kind of error with file:line:key, systemd rules.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "config/config.h"

using namespace unifn::config;
namespace fs = std::filesystem;

namespace {

struct Dir {
  fs::path path = fs::temp_directory_path() / ("unifn-cfg-" + std::to_string(getpid()) + "-" + std::to_string(rand()));
  Dir() { fs::create_directories(path); }
  ~Dir() { fs::remove_all(path); }
  fs::path write(const std::string& name, const std::string& text) const {
    fs::create_directories((path / name).parent_path());
    std::ofstream(path / name) << text;
    return path / name;
  }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("a drop-in with only name and image gets the documented defaults") {
  Dir d;
  auto f = load_function(d.write("fn.yaml", "name: echo\nimage: /opt/echo.elf\n"));
  CHECK(f.name == "echo");
  CHECK(f.image == "/opt/echo.elf");
  CHECK(f.memory_mb == 64);
  CHECK(f.timeout_ms == 5000);
  CHECK(f.min_warm == 1);
  CHECK(f.max_instances == 4);
  CHECK(f.isolation == "per-request");
  CHECK(f.accel == std::vector<std::string>{"cpu"});
}

TEST_CASE("every key of a drop-in is read, and a relative image is resolved against the file") {
  Dir d;
  auto f = load_function(d.write("sub/fn.yaml",
                                 "name: classify\nimage: ../functions/classify.elf\nmemory_mb: 128\ntimeout_ms: 2000\n"
                                 "min_warm: 2\nmax_instances: 8\nisolation: reuse\naccel: [cuda, cpu]\n"
                                 "env: {MODEL: fashion, LEVEL: '3'}\ncmdline: -v\n"));
  CHECK(f.image == (d.path / "functions/classify.elf").string());
  CHECK(f.memory_mb == 128);
  CHECK(f.timeout_ms == 2000);
  CHECK(f.min_warm == 2);
  CHECK(f.max_instances == 8);
  CHECK(f.isolation == "reuse");
  CHECK(f.accel == std::vector<std::string>{"cuda", "cpu"});
  CHECK(f.env == std::vector<std::pair<std::string, std::string>>{{"MODEL", "fashion"}, {"LEVEL", "3"}});
  CHECK(f.cmdline == "-v");
}

TEST_CASE("drop-in errors name the file, the line and the key") {
  Dir d;
  auto file = [&](const std::string& text) { return d.write("bad.yaml", text).string(); };
  auto err = [&](const std::string& text) { auto p = file(text); return error_of([&] { load_function(p); }); };
  const auto f = (d.path / "bad.yaml").string();
  CHECK(err("name: a\nimage: x\ncolour: red\n") == f + ":3: colour: unknown key");
  CHECK(err("name: a\nimage: x\nmemory_mb: lots\n") == f + ":3: memory_mb: 'lots' is not a whole number");
  CHECK(err("name: a\nimage: x\nmemory_mb: -5\n") == f + ":3: memory_mb: '-5' is not a whole number");
  CHECK(err("name: a\nimage: x\nmemory_mb: 4\n") == f + ":3: memory_mb: 4 is out of range (8 to 3072)");
  CHECK(err("name: a\nimage: x\nmemory_mb: {a: 1}\n") == f + ":3: memory_mb: must be a number");
  CHECK(err("image: x\n") == f + ":1: name: is required");
  CHECK(err("name: Bad Name\nimage: x\n") == f + ":1: name: 'Bad Name' is not a function name (a-z, 0-9, - and _, up to 63)");
  CHECK(err("name: a\nimage: x\nisolation: sometimes\n") == f + ":3: isolation: 'sometimes' is not per-request or reuse");
  CHECK(err("name: a\nimage: x\naccel: [tpu]\n") == f + ":3: accel: unknown accelerator backend 'tpu' (cuda or cpu)");
  CHECK(err("name: a\nimage: x\nmin_warm: 5\nmax_instances: 2\n") == f + ":3: min_warm: 5 is more than max_instances (2)");
  CHECK(err("name: a\nimage: x\nenv: {1BAD: x}\n") == f + ":3: env.1BAD: is not a valid environment variable name");
  CHECK(err("") == f + ": is empty");
  CHECK(err("- a\n- b\n") == f + ":1: the top level must be a map of keys");
  CHECK_THAT(err("name: [unclosed\n"), Catch::StartsWith(f + ":") && Catch::Contains("malformed YAML"));
}

TEST_CASE("the daemon file: defaults, every key, errors") {
  Dir d;
  auto c = load_daemon_config(d.write("unifn.yaml", "listen: 0.0.0.0:9000\n"));
  CHECK(c.host == "0.0.0.0");
  CHECK(c.port == 9000);
  CHECK(c.limits.max_body_bytes == 6291456);
  CHECK(c.functions_dirs == std::vector<std::string>{"/usr/lib/unifn/functions.d", "/etc/unifn/functions.d"});
  c = load_daemon_config(d.write("full.yaml",
                                 "listen: '[::1]:8081'\nstate_dir: /srv/unifn\nfunctions_dirs: [/a, /b]\n"
                                 "limits: {max_body_bytes: 1000, max_queue: 5}\naccel: {backends: [cpu]}\n"
                                 "log_level: debug\nio_threads: 4\n"));
  CHECK(c.host == "::1");
  CHECK(c.port == 8081);
  CHECK(c.state_dir == "/srv/unifn");
  CHECK(c.limits.max_body_bytes == 1000);
  CHECK(c.limits.max_queue == 5);
  CHECK(c.accel_backends == std::vector<std::string>{"cpu"});
  CHECK(c.io_threads == 4);
  const auto f = (d.path / "e.yaml").string();
  auto err = [&](const std::string& text) { d.write("e.yaml", text); return error_of([&] { load_daemon_config(f); }); };
  CHECK(err("listen: nowhere\n") == f + ":1: listen: must be HOST:PORT");
  CHECK(err("listen: host:99999\n") == f + ":1: listen: 'host:99999' is not HOST:PORT");
  CHECK(err("limits: {max_body: 5}\n") == f + ":1: limits.max_body: unknown key");
  CHECK(err("log_level: loud\n") == f + ":1: log_level: 'loud' is not debug, info, warning or error");
  CHECK(err("functions_dirs: /one\n") == f + ":1: functions_dirs: must be a list");
}

TEST_CASE("drop-ins follow systemd's rules") {
  Dir d;
  d.write("usr/10-a.yaml", "name: a\nimage: /usr/a.elf\n");
  d.write("usr/20-b.yaml", "name: b\nimage: /usr/b.elf\n");
  d.write("etc/20-b.yaml", "name: b\nimage: /etc/b.elf\n");  // replaces /usr's 20-b.yaml
  d.write("etc/05-c.yaml", "name: c\nimage: /etc/c.elf\n");
  d.write("etc/30-dup.yaml", "name: a\nimage: /etc/dup.elf\n");
  d.write("etc/40-broken.yaml", "name: d\nimage: /x\nbogus: 1\n");
  d.write("etc/.hidden.yaml", "name: h\nimage: /h\n");
  d.write("etc/50-e.yaml~", "name: e\nimage: /e\n");
  d.write("etc/60-f.yml.bak", "name: f\nimage: /f\n");
  d.write("etc/70-g.txt", "name: g\nimage: /g\n");
  auto set = load_dropins({(d.path / "usr").string(), (d.path / "etc").string(), (d.path / "missing").string()});
  std::vector<std::string> names;
  for (const auto& f : set.functions) names.push_back(f.name);
  CHECK(names == std::vector<std::string>{"c", "a", "b"});  // sorted by file name: 05, 10, 20
  CHECK(set.functions[2].image == "/etc/b.elf");
  REQUIRE(set.errors.size() == 2);
  CHECK_THAT(set.errors[0], Catch::Contains("30-dup.yaml") && Catch::Contains("already defined in") &&
                                Catch::Contains("10-a.yaml"));
  CHECK_THAT(set.errors[1], Catch::Contains("40-broken.yaml:3: bogus: unknown key"));
}

TEST_CASE("a whole set is checked for unreadable images before it may serve") {
  Dir d;
  d.write("fns/a.yaml", "name: a\nimage: /nonexistent/a.elf\n");
  auto set = load_dropins({(d.path / "fns").string()});
  auto errors = check_set(set);
  REQUIRE(errors.size() == 1);
  CHECK_THAT(errors[0], Catch::Contains("a.yaml") && Catch::Contains("/nonexistent/a.elf"));
}

TEST_CASE("the embedded default listens on loopback and finds a build tree's drop-ins") {
  Dir d;
  fs::create_directories(d.path / "functions.d");
  auto c = embedded_default(d.path);
  CHECK(c.host == "127.0.0.1");
  CHECK(c.port == 8080);
  CHECK(c.functions_dirs.front() == (d.path / "functions.d").string());
  CHECK(!c.state_dir.empty());
  CHECK_THROWS_WITH(resolve(d.path / "none.yaml", d.path), Catch::Contains("no such configuration file"));
}
