// The files shipped in configs/: the daemon defaults as documented, and the example drop-ins.
#include <catch2/catch.hpp>

#include <filesystem>

#include "src/config/config.h"

using namespace unifn::config;

TEST_CASE("configs/unifn.yaml states exactly the built-in defaults") {
  const auto c = load_daemon_config(std::filesystem::path(UNIFN_SOURCE_DIR) / "configs/unifn.yaml");
  const DaemonConfig defaults;
  CHECK(c.listen() == "127.0.0.1:8080");
  CHECK(c.state_dir ==
        embedded_default({}).state_dir);  // left to $STATE_DIRECTORY and its fallbacks
  CHECK(c.functions_dirs ==
        std::vector<std::string>{"/usr/lib/unifn/functions.d", "/etc/unifn/functions.d"});
  CHECK(c.limits == defaults.limits);
  CHECK(c.callbacks == defaults.callbacks);
  CHECK(c.accel_backends == defaults.accel_backends);
  CHECK(c.log_level == defaults.log_level);
  CHECK(c.io_threads == defaults.io_threads);
  CHECK(c.platform == defaults.platform);
  CHECK(c.images_dir == defaults.images_dir);
  CHECK(c.provider == defaults.provider);
}

TEST_CASE("configs/functions.d declares the eight example functions next to ../functions") {
  const auto dir = std::filesystem::path(UNIFN_SOURCE_DIR) / "configs/functions.d";
  const auto set = load_dropins(std::vector<std::filesystem::path>{dir});
  CHECK(set.errors.empty());
  std::vector<std::string> names;
  for (const auto& f : set.functions) {
    names.push_back(f.name);
    CHECK(f.vm.image ==
          (std::filesystem::path(UNIFN_SOURCE_DIR) / "configs/functions" / (f.name + ".elf"))
              .string());
  }
  CHECK(names == std::vector<std::string>{"hello", "echo", "wordfreq", "counter", "random", "sgemm",
                                          "edges", "classify"});
  for (const auto& f : set.functions)
    if (f.name == "counter")
      CHECK(f.pool.isolation == "per-request");  // it shows that no state survives a request
  for (const auto& f : set.functions)
    if (f.name == "sgemm" || f.name == "edges" || f.name == "classify")
      CHECK(f.vm.accel == std::vector<std::string>{"cuda", "cpu"});
}
