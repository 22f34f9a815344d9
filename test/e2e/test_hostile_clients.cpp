// The real daemon against hostile guests and clients: a function that tries to split its HTTP
// response gets a 502 with the reason and injects nothing; its console line is logged escaped.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include "test/e2e/daemon_fixture.h"

using namespace unifn::test;

namespace {

// A functions directory with the hostile_respond guest as "hostile".
struct HostileFunctions {
  TempDir dir;
  HostileFunctions() {
    std::ofstream(dir.str() + "/hostile.yaml")
        << "name: hostile\nimage: " << UNIFN_BUILD_DIR
        << "/test/guests/hostile_respond.elf\ntimeout_ms: 5000\n";
  }
};

const std::string kReason =
    "RESPOND with a content type holding control bytes (byte 0x0d at offset 10)";

}  // namespace

TEST_CASE(
    "a guest's content type with CR LF is answered 502 with the reason, and no header is "
    "injected") {
  HostileFunctions fns;
  Daemon d("--functions-dir " + fns.dir.str());
  auto r = curl("-i -X POST --data-binary crlf " + d.url("/function/hostile"));
  INFO(r);
  CHECK_THAT(r, Catch::StartsWith("HTTP/1.1 502"));
  CHECK_THAT(r, Catch::Contains("Content-Type: application/json\r\n"));
  CHECK_THAT(r, Catch::Contains("\"error\":\"function hostile failed: " + kReason + "\""));
  CHECK(r.find("X-Injected") == std::string::npos);
  CHECK(r.find("smuggled") == std::string::npos);

  // LF alone and DEL: refused the same way; a HTAB inside is a valid header value.
  auto lf = curl("-i -X POST --data-binary lf " + d.url("/function/hostile"));
  CHECK_THAT(lf, Catch::StartsWith("HTTP/1.1 502") && Catch::Contains("(byte 0x0a at offset 10)"));
  CHECK(lf.find("X-Injected") == std::string::npos);
  CHECK_THAT(curl("-i -X POST --data-binary del " + d.url("/function/hostile")),
             Catch::StartsWith("HTTP/1.1 502") && Catch::Contains("(byte 0x7f at offset 10)"));
  auto tab = curl("-i -X POST --data-binary tab " + d.url("/function/hostile"));
  CHECK_THAT(tab, Catch::StartsWith("HTTP/1.1 200") &&
                      Catch::Contains("Content-Type: text/plain;\tcharset=utf-8\r\n") &&
                      Catch::EndsWith("\r\n\r\nsmuggled\n"));

  // The async path stores the same 502.
  auto id = curl("-X POST -H 'X-Call-Id: split-1' --data-binary crlf " +
                 d.url("/async-function/hostile"));
  CHECK_THAT(id, Catch::Contains("\"id\":\"split-1\""));
  std::string state;
  for (int i = 0; i < 200 && state.find("\"state\":\"done\"") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    state = curl(d.url("/v1/calls/split-1"));
  }
  CHECK_THAT(state, Catch::Contains("\"status\":502") && Catch::Contains(kReason));
  auto raw = curl("-i " + d.url("/v1/calls/split-1?result=raw"));
  CHECK_THAT(raw, Catch::StartsWith("HTTP/1.1 502"));
  CHECK(raw.find("X-Injected") == std::string::npos);

  // The daemon still serves, and the guest's console line was logged with its controls escaped.
  CHECK(curl("-X POST --data-binary tab " + d.url("/function/hostile")) == "smuggled\n");
  CHECK(d.wait_log("\\x1b[2Jcleared\\rforged"));
  auto log = d.log();
  CHECK(log.find('\x1b') == std::string::npos);
  CHECK(log.find('\r') == std::string::npos);
}

TEST_CASE("/system/functions shows a function's environment variable names, not their values") {
  TempDir fns;
  std::ofstream(fns.str() + "/echo.yaml") << "name: echo\nimage: " << UNIFN_FUNCTIONS_DIR
                                          << "/echo.elf\nenv:\n  API_TOKEN: s3cr3t-t0ken\n";
  Daemon d("--functions-dir " + fns.str());
  for (const auto& body :
       {curl(d.url("/system/functions")), curl(d.url("/system/function/echo"))}) {
    CHECK_THAT(body, Catch::Contains("\"envVars\":{\"API_TOKEN\":\"(hidden)\"}"));
    CHECK(body.find("s3cr3t") == std::string::npos);
  }
}

TEST_CASE("the daemon raises its soft open-file limit to the hard one") {
  Daemon d("", "ulimit -S -n 256;");
  std::string limits = sh("cat /proc/" + std::to_string(d.pid()) + "/limits").out;
  INFO(limits);
  auto line = limits.substr(limits.find("Max open files"));
  line = line.substr(0, line.find('\n'));
  std::istringstream in(line.substr(std::string("Max open files").size()));
  std::string soft, hard;
  in >> soft >> hard;
  CHECK(soft == hard);
  CHECK(soft != "256");
}
