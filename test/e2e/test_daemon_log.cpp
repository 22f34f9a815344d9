// The daemon's log_level (issue 10, item 2): with `log_level: error` a guest's console line (info)
// is not written while an error is; the level follows unifn.yaml on SIGHUP.
#include <catch2/catch.hpp>

#include <signal.h>

#include <fstream>

#include "test/e2e/daemon_fixture.h"

using namespace unifn::test;

TEST_CASE(
    "log_level: error, set by a reload, keeps a guest's console lines out and lets errors "
    "through") {
  TempDir dir;
  // hostile_respond prints one console line ("...cleared...forged") per call.
  std::ofstream(dir.str() + "/hostile.yaml")
      << "name: hostile\nimage: " << UNIFN_BUILD_DIR
      << "/test/guests/hostile_respond.elf\ntimeout_ms: 5000\n";
  TempDir etc;  // not in the functions directory, where it would be read as a drop-in
  const auto cfg = etc.str() + "/unifn.yaml";
  const std::string base = "listen: 127.0.0.1:0\nfunctions_dirs: [" + dir.str() + "]\n";
  std::ofstream(cfg) << base;
  Daemon d("--config " + cfg);
  CHECK_THAT(d.log(), Catch::Contains(" info unifnd: listening on"));
  CHECK(curl("-X POST --data-binary tab " + d.url("/function/hostile")) == "smuggled\n");
  CHECK(d.wait_log("cleared"));  // at the default level, info, it is written

  std::ofstream(cfg) << base << "log_level: error\n";
  d.signal(SIGHUP);
  REQUIRE(d.wait_log("unifnd: reload: log_level is now error"));
  const auto from = d.log().size();
  CHECK(curl("-X POST --data-binary tab " + d.url("/function/hostile")) == "smuggled\n");
  std::ofstream(cfg) << base << "log_level: loud\n";
  d.signal(SIGHUP);  // a file the daemon refuses: an error line
  REQUIRE(d.wait_log("unifnd: reload refused:", from));
  // The console line was queued before the call was answered, the refusal after it: the log keeps
  // that order, so with the refusal written the console line had its turn already.
  const auto after = d.log().substr(from);
  CHECK_THAT(after, Catch::Contains(" error unifnd: reload refused:") &&
                        Catch::Contains("'loud' is not a log level"));
  CHECK_THAT(after, !Catch::Contains("cleared"));
}
