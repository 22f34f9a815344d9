// The resource limits of the daemon file (connections, descriptors, byte budgets, guest memory):
// their keys, errors as file:line: key: what, and what the values left at 0 come to on a machine.
#include <catch2/catch.hpp>

#include <string>

#include "src/config/config.h"
#include "test/unit/config/config_test.h"

using namespace unifn::config;
using unifn::config::test::error_of;
using unifn::config::test::TempDir;

TEST_CASE("the resource limits are read from the daemon file") {
  TempDir d;
  auto c = load_daemon_config(d.write("unifn.yaml",
                                      "limits:\n"
                                      "  max_connections: 5000\n"
                                      "  max_connections_per_client: 100\n"
                                      "  reserved_descriptors: 512\n"
                                      "  guest_memory_mb: 4096\n"
                                      "  async_results_max_bytes: 67108864\n"
                                      "  max_queue_bytes: 33554432\n"));
  CHECK(c.limits.max_connections == 5000);
  CHECK(c.limits.max_connections_per_client == 100);
  CHECK(c.limits.reserved_descriptors == 512);
  CHECK(c.limits.guest_memory_mb == 4096);
  CHECK(c.limits.async_results_max_bytes == 64u << 20);
  CHECK(c.limits.max_queue_bytes == 32u << 20);
  const Limits defaults;
  CHECK(defaults.max_connections == 0);  // derived at start
  CHECK(defaults.async_results_max_bytes == 256u << 20);
  CHECK(defaults.max_queue_bytes == 256u << 20);
}

TEST_CASE(
    "a resource limit out of range, or at odds with another, is an error naming file, line and "
    "key") {
  TempDir d;
  const auto f = (d / "e.yaml").string();
  auto err = [&](const std::string& text) {
    d.write("e.yaml", text);
    return error_of([&] { load_daemon_config(f); });
  };
  CHECK(err("limits:\n  max_connections: -5\n") ==
        f + ":2: limits.max_connections: -5 is negative; it must be 0 to 16777216");
  CHECK(err("limits:\n  reserved_descriptors: 2000000\n") ==
        f + ":2: limits.reserved_descriptors: 2000000 is out of range (0 to 1048576)");
  CHECK(err("limits:\n  guest_memory_mb: lots\n") ==
        f + ":2: limits.guest_memory_mb: 'lots' is not a whole number (0 to 4294967296)");
  CHECK(err("limits:\n  max_queue_bytes: 100\n") ==
        f + ":2: limits.max_queue_bytes: 100 is out of range (65536 to 1099511627776)");
  CHECK(err("limits:\n  max_connections: 100\n  max_connections_per_client: 200\n") ==
        f + ":3: limits.max_connections_per_client: 200 is more than max_connections (100)");
  CHECK(err("limits:\n  max_body_bytes: 1048576\n  async_results_max_bytes: 65536\n") ==
        f + ":3: limits.async_results_max_bytes: 65536 is less than max_body_bytes (1048576): the "
            "largest result "
            "could never be kept");
  CHECK(err("limits:\n  max_queue_bytes: 65536\n  max_body_bytes: 1048576\n") ==
        f + ":2: limits.max_queue_bytes: 65536 is less than max_body_bytes (1048576): the largest "
            "request body "
            "could never wait in a queue");
  // A per-client cap alone is fine: the total one is derived, and the per-client one held under it.
  CHECK(err("limits:\n  max_connections_per_client: 200\n") == "(no error)");
}

TEST_CASE("validate_strict checks the limits of a configuration changed in code") {
  FullConfig full{embedded_default({}), {}};
  full.daemon.state_dir = "/nonexistent/unifn-limits-test";
  full.daemon.limits.max_connections = 10;
  full.daemon.limits.max_connections_per_client = 20;
  const auto errors = validate_strict(full);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] ==
        "(embedded default): limits.max_connections_per_client: 20 is more than max_connections "
        "(10)");
}

TEST_CASE("limits left at 0 are derived from the open-file limit and the memory") {
  const Limits defaults;
  auto small = derive_limits(defaults, 1024, 8ull << 30);
  CHECK(small.reserved_descriptors == 256);  // a quarter
  CHECK(small.descriptor_ceiling == 768);
  CHECK(small.max_connections == 768);
  CHECK(small.max_connections_per_client == 96);
  CHECK(small.guest_memory_mb == 6144);  // three quarters of 8 GiB
  CHECK(small.notes.empty());

  auto big = derive_limits(defaults, 524288, 64ull << 30);
  CHECK(big.reserved_descriptors == 4096);  // at most 4096
  CHECK(big.descriptor_ceiling == 520192);
  CHECK(big.max_connections == 16384);  // idle connections cost memory: at most 16384 unless set
  CHECK(big.max_connections_per_client == 2048);

  auto tiny = derive_limits(defaults, 100, 0);
  CHECK(tiny.reserved_descriptors == 50);  // never more than half
  CHECK(tiny.max_connections == 50);
  CHECK(tiny.max_connections_per_client == 16);
  CHECK(tiny.guest_memory_mb == 4294967296);  // the memory is unknown: no budget short of the range
}

TEST_CASE("limits set higher than the descriptors allow are lowered, and the daemon is told why") {
  Limits l;
  l.max_connections = 50000;
  l.max_connections_per_client = 40000;
  l.reserved_descriptors = 1000;
  l.guest_memory_mb = 2048;
  auto e = derive_limits(l, 20000, 16ull << 30);
  CHECK(e.reserved_descriptors == 1000);
  CHECK(e.max_connections == 19000);
  CHECK(e.max_connections_per_client == 19000);  // never over the total
  CHECK(e.guest_memory_mb == 2048);
  REQUIRE(e.notes.size() == 1);
  CHECK(e.notes[0] ==
        "limits.max_connections (50000) is more than the open-file limit (20000) leaves after "
        "limits.reserved_descriptors (1000): at most 19000 connections");

  l.reserved_descriptors = 15000;
  e = derive_limits(l, 20000, 16ull << 30);
  CHECK(e.reserved_descriptors == 10000);
  CHECK(
      e.notes.at(0) ==
      "limits.reserved_descriptors (15000) would leave too few of the open-file limit (20000) for "
      "connections: 10000 are reserved");
}
