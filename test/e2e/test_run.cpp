// `unifnd run`: every example answers byte for byte; bad images and guests give one clear line.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <fstream>

#include "test/e2e/process.h"

using unifn::test::sh;

namespace {
const std::string kUnifnd = std::string(UNIFN_BUILD_DIR) + "/unifnd";
std::string fn(const std::string& name) {
  return std::string(UNIFN_FUNCTIONS_DIR) + "/" + name + ".elf";
}
std::string tmpfile(const std::string& name, const std::string& content) {
  std::string path = "/tmp/unifn-test-" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}
}  // namespace

TEST_CASE("unifnd run answers with each example function") {
  auto in = tmpfile("words", "the cat and the dog and the bird");
  CHECK(sh(kUnifnd + " run " + fn("hello") + " --input " + tmpfile("name", "unifn")).out ==
        "Hello, unifn!\n");
  CHECK(sh(kUnifnd + " run " + fn("echo") + " --input " + in).out ==
        "the cat and the dog and the bird");
  CHECK(sh(kUnifnd + " run " + fn("wordfreq") + " --input " + in).out ==
        "5 distinct words\n3 the\n2 and\n1 bird\n1 cat\n1 dog\n");
  CHECK(sh(kUnifnd + " run " + fn("counter")).out == "1\n");
  auto r = sh(kUnifnd + " run " + fn("random"));
  CHECK(r.status == 0);
  CHECK(r.out.size() == 33);
}

TEST_CASE("unifnd run refuses broken images with a sentence naming the file") {
  auto junk = tmpfile("junk.elf", "this is not an ELF file at all");
  auto r = sh(kUnifnd + " run " + junk + " 2>&1");
  CHECK(r.status != 0);
  CHECK_THAT(r.out, Catch::Contains(junk) && Catch::Contains("not an ELF"));
  std::ifstream f(fn("hello"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  auto cut = tmpfile("cut.elf", bytes.substr(0, 200));
  r = sh(kUnifnd + " run " + cut + " 2>&1");
  CHECK(r.status != 0);
  CHECK_THAT(r.out, Catch::Contains("past the end of the file"));
  auto missing = sh(kUnifnd + " run /nonexistent.elf 2>&1");
  CHECK(missing.status != 0);
  CHECK_THAT(missing.out, Catch::Contains("/nonexistent.elf"));
}

TEST_CASE("unifnd run stops a guest that loops forever") {
  auto r = sh(kUnifnd + " run " + std::string(UNIFN_BUILD_DIR) +
              "/test/guests/misbehave.elf --timeout-ms 300 --input " + tmpfile("loop", "loop") +
              " 2>&1");
  CHECK(r.status == 124);
  CHECK_THAT(r.out, Catch::Contains("deadline"));
}

TEST_CASE("unifnd run --state-dir boots cold once, then restores from the snapshot") {
  std::string dir = "/tmp/unifn-run-state-" + std::to_string(getpid());
  sh("rm -rf " + dir);
  auto cmd = kUnifnd + " run " + fn("hello") + " --state-dir " + dir + " --input " +
             tmpfile("who", "disk") + " 2>&1";
  auto first = sh(cmd);
  CHECK_THAT(first.out,
             Catch::Contains("booted cold, snapshot saved") && Catch::Contains("Hello, disk!"));
  auto second = sh(cmd);
  CHECK_THAT(second.out,
             Catch::Contains("restored from snapshot") && Catch::Contains("Hello, disk!"));
  sh("rm -rf " + dir);
}
