// Function drop-ins: defaults, every key, and each kind of mistake reported as file:line: key:
// what.
#include <catch2/catch.hpp>

#include "src/config/config.h"
#include "test/unit/config/config_test.h"

using namespace unifn::config;
using unifn::config::test::error_of;
using unifn::config::test::TempDir;

namespace {

// Writes text as fn.yaml and returns "<that file>" and the error loading it gives.
struct Dropin {
  TempDir dir;
  std::string file = (dir / "fn.yaml").string();
  std::string error(const std::string& text) {
    dir.write("fn.yaml", text);
    return error_of([&] { load_function(file); });
  }
};

const std::string kHead = "name: a\nimage: /x.elf\n";  // lines 1 and 2 of most cases below

}  // namespace

TEST_CASE("a drop-in with only name and image gets the documented defaults") {
  TempDir d;
  auto f = load_function(d.write("fn.yaml", "name: echo\nimage: /opt/echo.elf\n"));
  CHECK(f.name == "echo");
  CHECK(f.vm.image == "/opt/echo.elf");
  CHECK(f.vm.memory_mb == 64);
  CHECK(f.pool.timeout_ms == 5000);
  CHECK(f.pool.min_warm == 1);
  CHECK(f.pool.max_instances == 4);
  CHECK(f.pool.isolation == "per-request");
  CHECK(f.vm.accel == std::vector<std::string>{"cpu"});
  CHECK(f.vm.env.empty());
  CHECK(f.vm.cmdline.empty());
  CHECK(f.source == (d / "fn.yaml").string());
}

TEST_CASE("every key of a drop-in is read") {
  TempDir d;
  auto f = load_function(d.write("fn.yaml",
                                 "name: classify_v2-b\n"
                                 "image: /usr/lib/unifn/functions/../functions/classify.elf\n"
                                 "memory_mb: 128\n"
                                 "timeout_ms: 2000\n"
                                 "min_warm: 2\n"
                                 "max_instances: 8\n"
                                 "isolation: reuse\n"
                                 "accel: [cuda, cpu]\n"
                                 "env:\n"
                                 "  MODEL: fashion\n"
                                 "  LEVEL: 3\n"
                                 "  EMPTY: ''\n"
                                 "cmdline: --verbose --threads=2\n"));
  CHECK(f.name == "classify_v2-b");
  CHECK(f.vm.image == "/usr/lib/unifn/functions/classify.elf");
  CHECK(f.vm.memory_mb == 128);
  CHECK(f.pool.timeout_ms == 2000);
  CHECK(f.pool.min_warm == 2);
  CHECK(f.pool.max_instances == 8);
  CHECK(f.pool.isolation == "reuse");
  CHECK(f.vm.accel == std::vector<std::string>{"cuda", "cpu"});
  CHECK(f.vm.env == std::vector<std::pair<std::string, std::string>>{
                        {"MODEL", "fashion"}, {"LEVEL", "3"}, {"EMPTY", ""}});
  CHECK(f.vm.cmdline == "--verbose --threads=2");
  CHECK(f.lines.at("name") == 1);
  CHECK(f.lines.at("image") == 2);
  CHECK(f.lines.at("cmdline") == 13);
}

TEST_CASE("the edges of each range are accepted") {
  TempDir d;
  auto f = load_function(d.write(
      "lo.yaml",
      "name: '0'\nimage: /x\nmemory_mb: 8\ntimeout_ms: 1\nmin_warm: 0\nmax_instances: 1\n"));
  CHECK(f.name == "0");
  CHECK(f.vm.memory_mb == 8);
  CHECK(f.pool.min_warm == 0);
  f = load_function(
      d.write("hi.yaml", "name: " + std::string(63, 'z') +
                             "\nimage: /x\nmemory_mb: 3072\ntimeout_ms: 600000\nmin_warm: 256\n"
                             "max_instances: 256\naccel: [cpu, cuda]\n"));
  CHECK(f.vm.memory_mb == 3072);
  CHECK(f.pool.timeout_ms == 600000);
  CHECK(f.pool.min_warm == 256);
  CHECK(f.pool.max_instances == 256);
  CHECK(f.vm.accel == std::vector<std::string>{"cpu", "cuda"});
}

TEST_CASE("a relative image path is resolved against the drop-in's directory") {
  TempDir d;
  auto f = load_function(d.write("lib/unifn/functions.d/10-hello.yaml",
                                 "name: hello\nimage: ../functions/hello.elf\n"));
  CHECK(f.vm.image == (d / "lib/unifn/functions/hello.elf").string());
  f = load_function(d.write("lib/unifn/functions.d/20-same.yaml", "name: same\nimage: same.elf\n"));
  CHECK(f.vm.image == (d / "lib/unifn/functions.d/same.elf").string());
}

TEST_CASE("unknown keys are errors, with a suggestion for a near miss") {
  Dropin t;
  CHECK(t.error(kHead + "colour: red\n") == t.file + ":3: colour: unknown key");
  CHECK(t.error(kHead + "memroy_mb: 128\n") ==
        t.file + ":3: memroy_mb: unknown key (did you mean 'memory_mb'?)");
  CHECK(t.error(kHead + "Isolation: reuse\n") ==
        t.file + ":3: Isolation: unknown key (did you mean 'isolation'?)");
}

TEST_CASE("values of the wrong type are errors") {
  Dropin t;
  CHECK(t.error(kHead + "memory_mb: {a: 1}\n") ==
        t.file + ":3: memory_mb: must be a whole number, not a map");
  CHECK(t.error(kHead + "memory_mb: [1, 2]\n") ==
        t.file + ":3: memory_mb: must be a whole number, not a list");
  CHECK(t.error(kHead + "memory_mb: lots\n") ==
        t.file + ":3: memory_mb: 'lots' is not a whole number (8 to 3072)");
  CHECK(t.error(kHead + "memory_mb: 1.5\n") ==
        t.file + ":3: memory_mb: '1.5' is not a whole number (8 to 3072)");
  CHECK(t.error(kHead + "memory_mb: 0x40\n") ==
        t.file + ":3: memory_mb: '0x40' is not a whole number (8 to 3072)");
  CHECK(t.error(kHead + "memory_mb: -5\n") ==
        t.file + ":3: memory_mb: -5 is negative; it must be 8 to 3072");
  CHECK(t.error(kHead + "min_warm: -1\n") ==
        t.file + ":3: min_warm: -1 is negative; it must be 0 to 256");
  CHECK(t.error(kHead + "memory_mb:\n") ==
        t.file + ":3: memory_mb: has no value (leave the key out for the default)");
  CHECK(t.error("name: {first: a}\nimage: /x\n") ==
        t.file + ":1: name: must be a string, not a map");
  CHECK(t.error("name: a\nimage: [/x, /y]\n") ==
        t.file + ":2: image: must be a string, not a list");
  CHECK(t.error(kHead + "isolation:\n  mode: reuse\n") ==
        t.file + ":3: isolation: must be a string, not a map");
  CHECK(t.error(kHead + "accel: cpu\n") ==
        t.file + ":3: accel: must be a list such as [a, b], not 'cpu'");
  CHECK(t.error(kHead + "accel: [[cpu]]\n") ==
        t.file + ":3: accel: each item must be a string, not a list");
  CHECK(t.error(kHead + "env: [A=1]\n") ==
        t.file + ":3: env: must be a map of names to strings, not a list");
  CHECK(t.error(kHead + "env:\n  A: {b: 1}\n") ==
        t.file + ":4: env.A: must be a string, not a map");
  CHECK(t.error(kHead + "env:\n  A:\n") ==
        t.file + ":4: env.A: has no value (write '' for an empty string)");
  CHECK(t.error(kHead + "cmdline: [a, b]\n") ==
        t.file + ":3: cmdline: must be a string, not a list");
}

TEST_CASE("values out of range are errors") {
  Dropin t;
  CHECK(t.error(kHead + "memory_mb: 4\n") ==
        t.file + ":3: memory_mb: 4 is out of range (8 to 3072)");
  CHECK(t.error(kHead + "memory_mb: 4096\n") ==
        t.file + ":3: memory_mb: 4096 is out of range (8 to 3072)");
  CHECK(t.error(kHead + "timeout_ms: 0\n") ==
        t.file + ":3: timeout_ms: 0 is out of range (1 to 600000)");
  CHECK(t.error(kHead + "timeout_ms: 99999999999999999999999\n") ==
        t.file + ":3: timeout_ms: 99999999999999999999999 is out of range (1 to 600000)");
  CHECK(t.error(kHead + "max_instances: 0\n") ==
        t.file + ":3: max_instances: 0 is out of range (1 to 256)");
  CHECK(t.error(kHead + "max_instances: 257\n") ==
        t.file + ":3: max_instances: 257 is out of range (1 to 256)");
  CHECK(t.error(kHead + "min_warm: 5\nmax_instances: 2\n") ==
        t.file + ":3: min_warm: 5 is more than max_instances (2)");
  CHECK(t.error(kHead + "min_warm: 5\n") ==
        t.file + ":3: min_warm: 5 is more than max_instances (4)");
}

TEST_CASE("a missing required key is an error at the top of the file") {
  Dropin t;
  CHECK(t.error("image: /x\n") == t.file + ":1: name: is required");
  CHECK(t.error("# a comment\nname: a\n") == t.file + ":2: image: is required");
  CHECK(t.error("name: a\nimage: ''\n") == t.file + ":2: image: must not be empty");
}

TEST_CASE("names, modes, backends and environment names are checked") {
  Dropin t;
  const std::string rule =
      " is not a valid function name (1 to 63 characters of a-z, 0-9, '-' and '_', "
      "starting with a letter or digit)";
  CHECK(t.error("name: Bad Name\nimage: /x\n") == t.file + ":1: name: 'Bad Name'" + rule);
  CHECK(t.error("name: -dash\nimage: /x\n") == t.file + ":1: name: '-dash'" + rule);
  CHECK(t.error("name: ''\nimage: /x\n") == t.file + ":1: name: ''" + rule);
  CHECK(t.error("name: " + std::string(64, 'a') + "\nimage: /x\n") ==
        t.file + ":1: name: '" + std::string(64, 'a') + "'" + rule);
  CHECK(t.error(kHead + "isolation: sometimes\n") ==
        t.file + ":3: isolation: 'sometimes' is not an isolation mode (per-request or reuse)");
  CHECK(t.error(kHead + "accel:\n  - cpu\n  - tpu\n") ==
        t.file + ":5: accel: 'tpu' is not an accelerator backend (cuda or cpu)");
  CHECK(t.error(kHead + "accel: [cpu, cpu]\n") == t.file + ":3: accel: 'cpu' is listed twice");
  CHECK(t.error(kHead + "accel: []\n") ==
        t.file + ":3: accel: must name at least one backend (cuda, cpu)");
  CHECK(t.error(kHead + "env:\n  OK: 1\n  1BAD: x\n") ==
        t.file +
            ":5: env.1BAD: is not a valid environment variable name (letters, digits and '_', not "
            "starting with a digit)");
  CHECK(t.error(kHead + "env:\n  A: 1\n  A: 2\n") ==
        t.file + ":5: env.A: is given twice (first on line 4)");
  CHECK(t.error(kHead + "env: {A: \"x\\0y\"}\n") ==
        t.file + ":3: env.A: must not contain a NUL character");
  CHECK(t.error(kHead + "env: {BIG: " + std::string(20000, 'x') + "}\n") ==
        t.file +
            ":3: env: takes 20006 bytes in the guest, more than the 16384 a function may have");
  CHECK(t.error(kHead + "cmdline: " + std::string(5000, 'x') + "\n") ==
        t.file + ":3: cmdline: is 5000 bytes, more than the 4095 a function may have");
}

TEST_CASE("a key given twice is an error naming both lines") {
  Dropin t;
  CHECK(t.error("name: a\nimage: /x\nname: b\n") ==
        t.file + ":3: name: is given twice (first on line 1)");
}

TEST_CASE("files that are not one map of keys are errors") {
  Dropin t;
  const auto empty = t.file + ": is empty; a map of keys such as 'name: hello' is expected";
  CHECK(t.error("") == empty);
  CHECK(t.error("# nothing but a comment\n") == empty);
  CHECK(t.error("---\n") == empty);
  CHECK(t.error("- a\n- b\n") == t.file + ":1: the file must be a map of keys, not a list");
  CHECK(t.error("just words\n") == t.file + ":1: the file must be a map of keys, not 'just words'");
  CHECK(t.error("name: a\nimage: /x\n---\nname: b\n") ==
        t.file + ":4: a second YAML document starts here; one map of keys is expected");
  CHECK_THAT(t.error("name: a\nimage: [unclosed\n"),
             Catch::StartsWith(t.file + ":") && Catch::Contains("malformed YAML"));
  CHECK(t.error("name: a\n\timage: /x\n").rfind(t.file + ":2: malformed YAML: ", 0) == 0);
  CHECK(error_of([&] { load_function(t.dir / "absent.yaml"); }) ==
        (t.dir / "absent.yaml").string() + ": cannot be read (No such file or directory)");
  CHECK(error_of([&] { load_function(t.dir.path()); }) ==
        t.dir.path().string() + ": is a directory, not a YAML file");
}

TEST_CASE("every error of a file is reported, in file order") {
  TempDir d;
  const auto file = d.write("fn.yaml", "name: Bad\nmemory_mb: 1\ncolour: red\nisolation: maybe\n");
  try {
    load_function(file);
    FAIL("no error");
  } catch (const ConfigError& e) {
    const auto f = file.string();
    REQUIRE(e.errors().size() == 5);
    CHECK_THAT(e.errors()[0],
               Catch::StartsWith(f + ":1: name: 'Bad' is not a valid function name"));
    CHECK(e.errors()[1] == f + ":1: image: is required");
    CHECK(e.errors()[2] == f + ":2: memory_mb: 1 is out of range (8 to 3072)");
    CHECK(e.errors()[3] == f + ":3: colour: unknown key");
    CHECK(e.errors()[4] ==
          f + ":4: isolation: 'maybe' is not an isolation mode (per-request or reuse)");
    CHECK(std::string(e.what()) == e.errors()[0] + "\n" + e.errors()[1] + "\n" + e.errors()[2] +
                                       "\n" + e.errors()[3] + "\n" + e.errors()[4]);
  }
}

// The trick: structured bindings compile only with exactly as many names as the struct has
// members. A setting added to FunctionConfig beside vm and pool, or to VmSettings or
// PoolSettings, breaks the build here until it is added to the table below, which then checks
// that its drop-in key lands in exactly the half it was put in.
TEST_CASE(
    "every function setting is in vm or in pool, and each drop-in key changes exactly its half") {
  FunctionConfig f;
  [[maybe_unused]] auto& [name, vm, pool, meta, source, lines] = f;
  [[maybe_unused]] auto& [labels, annotations] = f.meta;
  [[maybe_unused]] auto& [image, memory_mb, accel, env, cmdline] = f.vm;
  [[maybe_unused]] auto& [timeout_ms, min_warm, max_instances, isolation] = f.pool;
  struct Key {
    std::string line;
    bool vm;  // else pool
  };
  const Key keys[] = {
      {"image: /y.elf", true}, {"memory_mb: 128", true},    {"accel: [cuda, cpu]", true},
      {"env:\n  A: b", true},  {"cmdline: --v", true},      {"timeout_ms: 100", false},
      {"min_warm: 2", false},  {"max_instances: 3", false}, {"isolation: reuse", false}};
  STATIC_REQUIRE(std::size(keys) == 5 + 4);
  TempDir d;
  const auto base = load_function(d.write("fn.yaml", "name: a\nimage: /x.elf\n"));
  for (const auto& k : keys) {
    INFO(k.line);
    const std::string text = k.line.starts_with("image:")
                                 ? "name: a\n" + k.line + "\n"
                                 : "name: a\nimage: /x.elf\n" + k.line + "\n";
    const auto changed = load_function(d.write("fn.yaml", text));
    CHECK((changed.vm == base.vm) == !k.vm);
    CHECK((changed.pool == base.pool) == k.vm);
  }
  // labels and annotations (the provider API's) are shown back and change neither half.
  for (const std::string line : {"labels:\n  team: edge", "annotations:\n  topic: x"}) {
    INFO(line);
    const auto changed =
        load_function(d.write("fn.yaml", "name: a\nimage: /x.elf\n" + line + "\n"));
    CHECK(changed.vm == base.vm);
    CHECK(changed.pool == base.pool);
    CHECK_FALSE(changed.meta == base.meta);
  }
}
