// The provider API on the real daemon: images uploaded, functions deployed, updated, scaled and
// deleted over HTTP, kept across a restart; basic auth; a non-loopback listener without
// credentials refused.
#include <catch2/catch.hpp>

#include <signal.h>

#include <algorithm>
#include <fstream>
#include <future>

#include <nlohmann/json.hpp>

#include "test/e2e/daemon_fixture.h"

using namespace unifn::test;

namespace {

// Polls until the call answers want (a reload runs after the API's 202), up to 20 s.
bool eventually(const std::function<std::string()>& get, const std::string& want) {
  for (int i = 0; i < 400; ++i) {
    if (get() == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::string code(const std::string& args) { return curl("-o /dev/null -w '%{http_code}' " + args); }

std::string hand_written(const TempDir& fns) {
  std::ofstream(fns.str() + "/10-hand.yaml")
      << "name: hand\nimage: " << UNIFN_FUNCTIONS_DIR << "/echo.elf\nmin_warm: 1\n";
  return "--functions-dir " + fns.str();
}

// PUT /system/images/{image} with the example function's ELF of that name.
std::string upload(const Daemon& d, const std::string& image) {
  return code("-X PUT --data-binary @" + std::string(UNIFN_FUNCTIONS_DIR) + "/" + image + " " +
              d.url("/system/images/" + image));
}

// A drop-in for hostile_respond, which prints one console line ("...cleared...forged") per call;
// the daemon's arguments.
std::string hostile(const TempDir& fns) {
  std::ofstream(fns.str() + "/hostile.yaml")
      << "name: hostile\nimage: " << UNIFN_BUILD_DIR << "/test/guests/hostile_respond.elf\n";
  return "--functions-dir " + fns.str();
}

// The usage.totalMemoryBytes GET /system/function/{name} shows; fails the test when absent.
double memory_usage(const Daemon& d, const std::string& name) {
  const auto doc = nlohmann::json::parse(curl(d.url("/system/function/" + name)));
  REQUIRE(doc.contains("usage"));
  REQUIRE(doc["usage"].contains("cpu"));
  return doc["usage"]["totalMemoryBytes"].get<double>();
}

}  // namespace

TEST_CASE("usage: the private memory of a function's instances grows with what calls keep") {
  TempDir fns;
  // big_respond mallocs as many bytes as asked and never frees them; reuse keeps them.
  std::ofstream(fns.str() + "/big.yaml")
      << "name: big\nimage: " << UNIFN_BUILD_DIR
      << "/test/guests/big_respond.elf\nmin_warm: 1\nisolation: reuse\nmemory_mb: 64\n";
  const auto args = "--functions-dir " + fns.str();
  Daemon d(args);
  const double warm = memory_usage(d, "big");
  CHECK(warm > 0);  // a warm instance holds its own copy of the snapshot's pages
  for (int i = 0; i < 3; ++i)
    CHECK(code("-X POST --data-binary 4000000 " + d.url("/function/big")) == "200");
  const double grown = memory_usage(d, "big");
  CHECK(grown >= warm + 3 * 4000000.0);
  CHECK(grown <= 64.0 * 1024 * 1024);  // never more than the guest's RAM
  UNSCOPED_INFO("warm " << warm << " bytes, after three 4 MB calls " << grown << " bytes");

  // Scaled to zero: after the restart no instance runs, and none is counted.
  CHECK(code("-X POST -d '{\"serviceName\":\"big\",\"replicas\":0}' " +
             d.url("/system/scale-function/big")) == "202");
  REQUIRE(d.wait_log("reloaded"));
  REQUIRE(d.stop() == 0);
  Daemon again(args);
  const auto doc = curl(again.url("/system/function/big"));
  CHECK_THAT(doc, Catch::Contains("\"replicas\":0,"));
  CHECK_THAT(doc, Catch::Contains("\"usage\":{\"cpu\":0.0,\"totalMemoryBytes\":0.0}"));
  CHECK(code("-X POST --data-binary 10 " + again.url("/function/big")) == "200");  // restored
  CHECK(memory_usage(again, "big") > 0);
  CHECK_THAT(curl(again.url("/system/functions")), Catch::Contains("\"totalMemoryBytes\":"));
}

TEST_CASE("deployed through the API: served, updated, scaled, kept across a restart, deleted") {
  TempDir fns;
  const auto args = hand_written(fns);
  Daemon d(args);
  CHECK(upload(d, "hello.elf") == "201");
  CHECK(upload(d, "counter.elf") == "201");
  CHECK(code("-X PUT --data-binary 'not an elf' " + d.url("/system/images/bad.elf")) == "400");

  CHECK(code("-X POST -d '{\"service\":\"greeter\",\"image\":\"hello.elf\",\"labels\":{\"team\":"
             "\"edge\"},\"somethingNew\":1}' " +
             d.url("/system/functions")) == "202");
  auto greet = [&] { return curl("-X POST --data-binary you " + d.url("/function/greeter")); };
  REQUIRE(eventually(greet, "Hello, you!\n"));
  const auto doc = curl(d.url("/system/function/greeter"));
  CHECK_THAT(doc, Catch::Contains("\"image\":\"hello.elf\""));
  CHECK_THAT(doc, Catch::Contains("\"namespace\":\"openfaas-fn\""));
  CHECK_THAT(doc, Catch::Contains("\"team\":\"edge\""));

  // A bad deployment: 400, and the set serves on unchanged.
  CHECK(code("-X PUT -d '{\"service\":\"greeter\",\"image\":\"bad.elf\"}' " +
             d.url("/system/functions")) == "400");
  CHECK(code("-X POST -d '{\"service\":\"hand\",\"image\":\"hello.elf\"}' " +
             d.url("/system/functions")) == "409");
  CHECK(greet() == "Hello, you!\n");
  CHECK(curl("-X POST --data-binary h " + d.url("/function/hand")) == "h");

  // An update: another image under the same name.
  CHECK(code("-X PUT -d '{\"service\":\"greeter\",\"image\":\"counter.elf\"}' " +
             d.url("/system/functions")) == "202");
  REQUIRE(eventually([&] { return curl("-X POST " + d.url("/function/greeter")); }, "1\n"));

  // Scale the hand-written function to zero: no warm instance after the restart below.
  CHECK(code("-X POST -d '{\"serviceName\":\"hand\",\"replicas\":0}' " +
             d.url("/system/scale-function/hand")) == "202");
  REQUIRE(d.wait_log("reloaded"));

  REQUIRE(d.stop() == 0);
  Daemon again(args);
  CHECK(curl("-X POST " + again.url("/function/greeter")) == "1\n");  // still deployed
  CHECK_THAT(curl(again.url("/system/function/hand")), Catch::Contains("\"replicas\":0,"));
  CHECK(curl("-X POST --data-binary z " + again.url("/function/hand")) == "z");  // restored

  CHECK(code("-X DELETE -d '{\"functionName\":\"greeter\"}' " + again.url("/system/functions")) ==
        "202");
  REQUIRE(eventually([&] { return code("-X POST " + again.url("/function/greeter")); }, "404"));
  CHECK(curl("-X POST --data-binary h " + again.url("/function/hand")) == "h");
}

TEST_CASE("a deploy during a reload, and deploys racing: each lands, the set stays whole") {
  TempDir fns;
  const auto args = hand_written(fns);
  Daemon d(args);
  REQUIRE(upload(d, "echo.elf") == "201");
  // A reload started by hand (a new hand-written function), and deploys racing it and each other.
  std::ofstream(fns.str() + "/20-second.yaml")
      << "name: second\nimage: " << UNIFN_FUNCTIONS_DIR << "/echo.elf\n";
  d.signal(SIGHUP);
  std::vector<std::future<std::string>> deploys;
  for (int i = 0; i < 4; ++i)
    deploys.push_back(std::async(std::launch::async, [&, i] {
      return code("-X POST -d '{\"service\":\"racer-" + std::to_string(i) +
                  "\",\"image\":\"echo.elf\"}' " + d.url("/system/functions"));
    }));
  auto same = std::async(std::launch::async, [&] {
    return code("-X POST -d '{\"service\":\"twin\",\"image\":\"echo.elf\"}' " +
                d.url("/system/functions"));
  });
  auto twin = code("-X POST -d '{\"service\":\"twin\",\"image\":\"echo.elf\"}' " +
                   d.url("/system/functions"));
  const auto other = same.get();
  CHECK(((twin == "202" && other == "409") || (twin == "409" && other == "202")));
  for (auto& f : deploys) CHECK(f.get() == "202");
  for (const std::string fn : {"second", "racer-0", "racer-1", "racer-2", "racer-3", "twin"}) {
    INFO(fn);
    CHECK(eventually(
        [&] { return curl("-X POST --data-binary " + fn + " " + d.url("/function/" + fn)); }, fn));
  }
  CHECK(curl("-X POST --data-binary h " + d.url("/function/hand")) == "h");
}

TEST_CASE("basic auth from $CREDENTIALS_DIRECTORY guards /system/*, /function/* stays open") {
  TempDir fns, creds;
  const auto args = hand_written(fns);
  creds.write("basic-auth-user", "admin\n");
  creds.write("basic-auth-password", "s3cret\n");
  Daemon d(args, "CREDENTIALS_DIRECTORY=" + creds.str());
  CHECK(code(d.url("/system/functions")) == "401");
  CHECK(code("-u admin:wrong " + d.url("/system/functions")) == "401");
  CHECK(code("-u admin:s3cret " + d.url("/system/functions")) == "200");
  CHECK(code("-X POST -d '{\"service\":\"x\",\"image\":\"echo.elf\"}' " +
             d.url("/system/functions")) == "401");
  CHECK(curl("-X POST --data-binary open " + d.url("/function/hand")) == "open");
  CHECK(code(d.url("/healthz")) == "200");
}

TEST_CASE("a daemon on a non-loopback address without credentials refuses to start") {
  TempDir fns, state, creds;
  const auto args = hand_written(fns);
  const auto run = std::string(UNIFN_BUILD_DIR) + "/unifnd --listen 0.0.0.0:0 --state-dir " +
                   state.str() + " " + args + platform_flag(args);
  auto r = sh("timeout 5 " + run + " 2>&1; echo rc=$?");
  CHECK_THAT(r.out, Catch::Contains("is not a loopback address and no credentials"));
  CHECK_THAT(r.out, Catch::Contains("rc=1"));
  // With credentials it serves (until the timeout ends it).
  creds.write("basic-auth-user", "admin");
  creds.write("basic-auth-password", "s3cret");
  r = sh("CREDENTIALS_DIRECTORY=" + creds.str() + " timeout 3 " + run + " 2>&1; echo rc=$?");
  CHECK_THAT(r.out, Catch::Contains("listening on http://0.0.0.0:"));
  CHECK_THAT(r.out, Catch::Contains("rc=124"));
}

TEST_CASE("GET /system/logs: a function's console lines, and follow answered by the next call") {
  TempDir fns;
  Daemon d(hostile(fns));
  const auto logs = d.url("/system/logs?name=hostile");
  auto follow = std::async(std::launch::async,
                           [&] { return curl("--max-time 20 '" + logs + "&tail=0&follow=true'"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(follow.wait_for(std::chrono::milliseconds(0)) == std::future_status::timeout);  // held
  CHECK(curl("-X POST --data-binary tab " + d.url("/function/hostile")) == "smuggled\n");
  const auto followed = follow.get();
  CHECK_THAT(followed, Catch::Contains("\"name\":\"hostile\",\"namespace\":\"openfaas-fn\""));
  CHECK_THAT(followed, Catch::Contains("cleared"));
  CHECK(followed.back() == '\n');

  CHECK(curl("-X POST --data-binary tab " + d.url("/function/hostile")) == "smuggled\n");
  const auto all = curl("'" + logs + "'");
  CHECK(std::count(all.begin(), all.end(), '\n') >= 2);
  const auto last = curl("'" + logs + "&tail=1'");
  CHECK(std::count(last.begin(), last.end(), '\n') == 1);
  CHECK(code("'" + d.url("/system/logs?name=nobody") + "'") == "404");
}

TEST_CASE(
    "GET /system/logs?follow=true streams each call's line as it comes, until the daemon "
    "stops") {
  // HTTP/1.1: chunked; HTTP/1.0: the body ends with the connection.
  const std::string http = GENERATE(std::string("--http1.1"), std::string("--http1.0"));
  INFO(http);
  TempDir fns;
  Daemon d(hostile(fns));
  const auto out = fns.str() + "/followed.ndjson";
  // One connection for the whole stream (num_connects), ended cleanly (curl's status 0, not 18).
  auto follow = std::async(std::launch::async, [&] {
    return sh("curl -sN " + http + " --max-time 60 -o " + out +
              " -w '%{http_code} %{num_connects}' '" +
              d.url("/system/logs?name=hostile&tail=0&follow=true") + "'; echo \" rc=$?\"")
        .out;
  });
  auto lines = [&] {
    std::vector<nlohmann::json> got;
    std::ifstream in(out);
    for (std::string line; std::getline(in, line);) got.push_back(nlohmann::json::parse(line));
    return got;
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (std::size_t i = 1; i <= 4; ++i) {
    const auto id = "follow-" + std::to_string(i);
    CHECK(curl("-X POST -H 'X-Call-Id: " + id + "' --data-binary tab " +
               d.url("/function/hostile")) == "smuggled\n");
    for (int t = 0; t < 200 && lines().size() < i; ++t)
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    const auto got = lines();
    REQUIRE(got.size() == i);  // this call's line arrived on the open stream, and only it
    CHECK(got.back()["instance"] == id);
    CHECK(got.back()["name"] == "hostile");
    CHECK_THAT(got.back()["text"].get<std::string>(), Catch::Contains("cleared"));
  }
  CHECK(follow.wait_for(std::chrono::milliseconds(0)) == std::future_status::timeout);  // open
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(d.stop() == 0);
  REQUIRE(follow.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  const auto stopped = std::chrono::steady_clock::now() - t0;
  CHECK(follow.get() == "200 1 rc=0\n");
  CHECK(stopped < std::chrono::seconds(3));  // the stream did not hold the drain
  for (std::size_t i = 0; i < 4; ++i)
    CHECK(lines()[i]["instance"] == "follow-" + std::to_string(i + 1));
}
