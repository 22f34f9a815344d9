// Drop-in directories under systemd's rules, and the whole-set checks behind check-config and
// reload.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>

#include "src/config/config.h"
#include "test/unit/config/config_test.h"

using namespace unifn::config;
using unifn::config::test::TempDir;
using unifn::config::test::write_image;

namespace {

std::vector<std::string> names(const DropinSet& set) {
  std::vector<std::string> out;
  for (const auto& f : set.functions) out.push_back(f.name);
  return out;
}

const FunctionConfig& find(const DropinSet& set, const std::string& name) {
  auto it = std::find_if(set.functions.begin(), set.functions.end(),
                         [&](const auto& f) { return f.name == name; });
  REQUIRE(it != set.functions.end());
  return *it;
}

}  // namespace

TEST_CASE("a drop-in in /etc replaces the same-named one in /usr/lib") {
  TempDir d;
  d.write("usr/50-classify.yaml", "name: classify\nimage: /usr/classify.elf\nmemory_mb: 64\n");
  d.write("etc/50-classify.yaml", "name: classify\nimage: /etc/classify.elf\nmemory_mb: 256\n");
  auto set = load_dropins(std::vector<std::filesystem::path>{d / "usr", d / "etc"});
  CHECK(set.errors.empty());
  REQUIRE(set.functions.size() == 1);
  CHECK(set.functions[0].vm.image == "/etc/classify.elf");
  CHECK(set.functions[0].vm.memory_mb == 256);
  CHECK(set.functions[0].source == (d / "etc/50-classify.yaml").string());
  // The order of the directories decides, not their names.
  set = load_dropins(std::vector<std::filesystem::path>{d / "etc", d / "usr"});
  REQUIRE(set.functions.size() == 1);
  CHECK(set.functions[0].vm.image == "/usr/classify.elf");
}

TEST_CASE("drop-ins of every directory are processed together in file-name order") {
  TempDir d;
  d.write("usr/20-b.yaml", "name: b\nimage: /b\n");
  d.write("usr/10-a.yaml", "name: a\nimage: /a\n");
  d.write("etc/05-c.yaml", "name: c\nimage: /c\n");
  d.write("etc/15-d.yaml", "name: d\nimage: /d\n");
  d.write("usr/Z-e.yaml",
          "name: e\nimage: /e\n");  // byte order: upper case before digits? no: '0' < 'Z'
  auto set = load_dropins(std::vector<std::filesystem::path>{d / "usr", d / "etc", d / "missing"});
  CHECK(set.errors.empty());  // a missing directory is no error
  CHECK(names(set) == std::vector<std::string>{"c", "a", "d", "b", "e"});
}

TEST_CASE("a function name defined in two files is an error naming both, the first file stays") {
  TempDir d;
  d.write("usr/10-echo.yaml", "name: echo\nimage: /first.elf\n");
  d.write("etc/30-echo-copy.yaml", "# copied by hand\nname: echo\nimage: /second.elf\n");
  auto set = load_dropins(std::vector<std::filesystem::path>{d / "usr", d / "etc"});
  REQUIRE(set.functions.size() == 1);
  CHECK(set.functions[0].vm.image == "/first.elf");
  REQUIRE(set.errors.size() == 1);
  CHECK(set.errors[0] == (d / "etc/30-echo-copy.yaml").string() +
                             ":2: name: function 'echo' is already defined in " +
                             (d / "usr/10-echo.yaml").string() + "; this file is skipped");
}

TEST_CASE("a broken drop-in is reported and skipped while the others load") {
  TempDir d;
  d.write("fns/10-good.yaml", "name: good\nimage: /good.elf\n");
  d.write("fns/20-typo.yaml", "name: typo\nimage: /t.elf\nmemory: 64\n");
  d.write("fns/30-empty.yaml", "");
  d.write("fns/40-garbage.yaml", "name: [oops\n");
  d.write("fns/50-also-good.yaml", "name: also-good\nimage: /also.elf\n");
  auto set = load_dropins(std::vector<std::filesystem::path>{d / "fns"});
  CHECK(names(set) == std::vector<std::string>{"good", "also-good"});
  REQUIRE(set.errors.size() == 3);
  CHECK(set.errors[0] ==
        (d / "fns/20-typo.yaml").string() + ":3: memory: unknown key (did you mean 'memory_mb'?)");
  CHECK(set.errors[1] == (d / "fns/30-empty.yaml").string() +
                             ": is empty; a map of keys such as 'name: hello' is expected");
  CHECK_THAT(set.errors[2], Catch::StartsWith((d / "fns/40-garbage.yaml").string() + ":") &&
                                Catch::Contains("malformed YAML"));
}

TEST_CASE(
    "only *.yaml files count: dotfiles, backups, other extensions and directories are ignored") {
  TempDir d;
  d.write("fns/10-real.yaml", "name: real\nimage: /r\n");
  for (const char* ignored :
       {".hidden.yaml", "10-real.yaml~", "10-real.yaml.bak", "10-real.yaml.swp",
        ".10-real.yaml.swp", "20-other.yml", "30-notes.txt", "README", "40-config.json"})
    d.write(std::string("fns/") + ignored, "name: ignored\nimage: /i\nthis would be: an error\n");
  std::filesystem::create_directories(d / "fns/50-dir.yaml");
  auto set = load_dropins(std::vector<std::filesystem::path>{d / "fns"});
  CHECK(set.errors.empty());
  CHECK(names(set) == std::vector<std::string>{"real"});
}

TEST_CASE("a link to /dev/null in a later directory masks the drop-in") {
  TempDir d;
  d.write("usr/10-hello.yaml", "name: hello\nimage: /h\n");
  d.write("usr/20-echo.yaml", "name: echo\nimage: /e\n");
  std::filesystem::create_directories(d / "etc");
  std::filesystem::create_symlink("/dev/null", d / "etc/10-hello.yaml");
  auto set = load_dropins(std::vector<std::filesystem::path>{d / "usr", d / "etc"});
  CHECK(set.errors.empty());
  CHECK(names(set) == std::vector<std::string>{"echo"});
}

TEST_CASE("relative images are resolved against each drop-in's own directory") {
  TempDir d;
  d.write("usr/lib/unifn/functions.d/10-hello.yaml",
          "name: hello\nimage: ../functions/hello.elf\n");
  d.write("etc/unifn/functions.d/20-mine.yaml", "name: mine\nimage: images/mine.elf\n");
  auto set = load_dropins(std::vector<std::string>{(d / "usr/lib/unifn/functions.d").string(),
                                                   (d / "etc/unifn/functions.d").string()});
  CHECK(set.errors.empty());
  CHECK(find(set, "hello").vm.image == (d / "usr/lib/unifn/functions/hello.elf").string());
  CHECK(find(set, "mine").vm.image == (d / "etc/unifn/functions.d/images/mine.elf").string());
}

TEST_CASE("an unreadable drop-in directory is reported") {
  if (::geteuid() == 0) return;  // root reads it anyway
  TempDir d;
  d.write("locked/10-a.yaml", "name: a\nimage: /a\n");
  std::filesystem::permissions(d / "locked", std::filesystem::perms::none);
  auto set = load_dropins(std::vector<std::filesystem::path>{d / "locked"});
  std::filesystem::permissions(d / "locked", std::filesystem::perms::owner_all);
  REQUIRE(set.errors.size() == 1);
  CHECK_THAT(set.errors[0],
             Catch::StartsWith((d / "locked").string() + ": the drop-in directory cannot be read"));
}

TEST_CASE("validate_strict accepts a set whose images are all there") {
  TempDir d;
  write_image(d, "functions/hello.elf");
  d.write("functions.d/10-hello.yaml", "name: hello\nimage: ../functions/hello.elf\n");
  DaemonConfig daemon = embedded_default({});
  daemon.functions_dirs = {(d / "functions.d").string()};
  auto full = load_full(daemon);
  CHECK(full.dropins.functions.size() == 1);
  CHECK(validate_strict(full).empty());
}

TEST_CASE("validate_strict names the drop-in and the image that cannot serve") {
  TempDir d;
  write_image(d, "functions/ok.elf");
  d.write("functions/notes.txt", "not an image");
  std::filesystem::create_directories(d / "functions/adir");
  d.write("fns/10-ok.yaml", "name: ok\nimage: ../functions/ok.elf\n");
  d.write("fns/20-missing.yaml",
          "# the image was never built\nname: missing\nimage: ../functions/missing.elf\n");
  d.write("fns/30-text.yaml", "name: text\nimage: ../functions/notes.txt\n");
  d.write("fns/40-dir.yaml", "name: dir\nimage: ../functions/adir\n");
  d.write("fns/50-broken.yaml", "name: broken\nimage: ../functions/ok.elf\nmemory_mb: 1\n");
  DaemonConfig daemon = embedded_default({});
  daemon.functions_dirs = {(d / "fns").string()};
  const auto errors = validate_strict(load_full(daemon));
  const auto fns = d / "fns";
  const auto images = (d / "functions").string();
  REQUIRE(errors.size() == 4);
  // The set's own errors first: the broken file was skipped, and a reload must refuse it.
  CHECK(errors[0] ==
        (fns / "50-broken.yaml").string() + ":3: memory_mb: 1 is out of range (8 to 3072)");
  CHECK(errors[1] == (fns / "20-missing.yaml").string() + ":3: image: " + images +
                         "/missing.elf does not exist");
  CHECK(errors[2] == (fns / "30-text.yaml").string() + ":2: image: " + images +
                         "/notes.txt is not an ELF image");
  CHECK(errors[3] == (fns / "40-dir.yaml").string() + ":2: image: " + images +
                         "/adir is a directory, not an image file");
}

TEST_CASE("validate_strict checks a configuration changed in code") {
  TempDir d;
  const auto image = write_image(d, "f.elf").string();
  FullConfig full{embedded_default({}), {}};
  full.daemon.accel_backends = {"cpu", "fpga"};
  full.daemon.platform = "xen";
  FunctionConfig a;
  a.name = "a";
  a.vm.image = image;
  a.source = "/etc/unifn/functions.d/a.yaml";
  a.lines = {{"name", 1}, {"accel", 4}};
  a.vm.accel = {"cpu", "tpu"};
  FunctionConfig b = a;
  b.vm.accel = {"cpu"};
  b.source = "/etc/unifn/functions.d/b.yaml";
  b.lines = {};
  b.pool.min_warm = 9;
  full.dropins.functions = {a, b};
  const auto errors = validate_strict(full);
  REQUIRE(errors.size() == 5);
  CHECK(errors[0] ==
        "(embedded default): accel.backends: 'fpga' is not an accelerator backend (cuda or cpu)");
  CHECK(errors[1] ==
        "(embedded default): platform: 'xen' is not a platform (auto, kvm or sandbox)");
  CHECK(
      errors[2] ==
      "/etc/unifn/functions.d/a.yaml:4: accel: 'tpu' is not an accelerator backend (cuda or cpu)");
  CHECK(errors[3] == "/etc/unifn/functions.d/b.yaml: min_warm: 9 is more than max_instances (4)");
  CHECK(errors[4] ==
        "/etc/unifn/functions.d/b.yaml: name: function 'a' is also defined in "
        "/etc/unifn/functions.d/a.yaml");
}

TEST_CASE("load_full reads the daemon file named on the command line, then its drop-ins") {
  TempDir d;
  write_image(d, "functions/echo.elf");
  d.write("functions.d/20-echo.yaml",
          "name: echo\nimage: ../functions/echo.elf\nisolation: reuse\n");
  const auto file = d.write("unifn.yaml", "listen: 127.0.0.1:0\nfunctions_dirs: [functions.d]\n");
  auto full = load_full(file, d.path());
  CHECK(full.daemon.source == file.string());
  CHECK(full.daemon.port == 0);
  CHECK(names(full.dropins) == std::vector<std::string>{"echo"});
  CHECK(validate_strict(full).empty());
  CHECK_THROWS_AS(load_full(d / "absent.yaml", d.path()), ConfigError);
}

TEST_CASE("validate_strict reports an image this user cannot read") {
  if (::geteuid() == 0) return;  // root reads it anyway
  TempDir d;
  const auto image = write_image(d, "locked.elf");
  std::filesystem::permissions(image, std::filesystem::perms::none);
  d.write("fns/10-locked.yaml", "name: locked\nimage: ../locked.elf\n");
  FullConfig full{embedded_default({}),
                  load_dropins(std::vector<std::filesystem::path>{d / "fns"})};
  const auto errors = validate_strict(full);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == (d / "fns/10-locked.yaml").string() + ":2: image: " + image.string() +
                         " cannot be read (Permission denied)");
}
