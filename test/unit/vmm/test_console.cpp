// Console: guest output cut into lines for the log, with long lines cut and the last line flushed.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "devices/console.h"

using unifn::vmm::Console;

namespace {
struct Lines {
  std::vector<std::string> got;
  Console console{[this](std::string_view l) { got.emplace_back(l); }};
  void write(const std::string& s) {
    console.write(std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
  }
};
using V = std::vector<std::string>;
}  // namespace

TEST_CASE("Console splits output on newlines, across writes") {
  Lines c;
  c.write("one\ntw");
  CHECK(c.got == V{"one"});
  c.write("o\nthr");
  c.write("ee");
  CHECK(c.got == V{"one", "two"});
  c.write("\n");
  CHECK(c.got == V{"one", "two", "three"});
  CHECK(c.console.bytes_written() == 14);
}

TEST_CASE("Console keeps empty lines and byte values other than newline") {
  Lines c;
  c.write("\n\na\tb\r\n");
  c.write(std::string("nul\0inside\n", 11));
  CHECK(c.got == V{"", "", "a\tb\r", std::string("nul\0inside", 10)});
}

TEST_CASE("Console::flush emits a last unterminated line once, and nothing when there is none") {
  Lines c;
  c.write("no newline");
  CHECK(c.got.empty());
  c.console.flush();
  CHECK(c.got == V{"no newline"});
  c.console.flush();
  c.write("\n");
  CHECK(c.got == V{"no newline", ""});  // the newline after a flush ends an empty line
  c.console.flush();
  CHECK(c.got.size() == 2);
}

TEST_CASE("Console cuts a line longer than 4096 bytes instead of buffering it forever") {
  Lines c;
  c.write(std::string(4096 * 2 + 10, 'x') + "\n");
  CHECK(c.got == V{std::string(4096, 'x'), std::string(4096, 'x'), std::string(10, 'x')});
}

TEST_CASE("Console: a line of exactly 4096 bytes then a newline is one line, not two") {
  Lines c;
  c.write(std::string(4096, 'y'));
  c.write("\nz\n");
  CHECK(c.got == V{std::string(4096, 'y'), "z"});
}

TEST_CASE("Console without a sink counts bytes and drops lines") {
  Console c;
  const std::string s = "lost\nlost too";
  c.write(std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
  c.flush();
  CHECK(c.bytes_written() == s.size());
  std::vector<std::string> got;
  c.set_sink([&](std::string_view l) { got.emplace_back(l); });
  c.write(std::span(reinterpret_cast<const std::uint8_t*>(s.data()), 5));
  CHECK(got == V{"lost"});
}
