// Console: guest output cut into lines for the log, with long lines cut, the last line flushed,
// control bytes escaped, within its limits per call, per request and per second.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "test/support/console_lines.h"
#include "vmm/devices/console.h"

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

TEST_CASE("Console keeps empty lines and every byte other than newline, control bytes escaped") {
  Lines c;
  c.write("\n\na\tb\r\n");
  c.write(std::string("nul\0inside\n", 11));
  CHECK(c.got == V{"", "", "a\tb\\r", "nul\\x00inside"});
}

TEST_CASE("No guest line passes for one of the VMM's: only say() starts a line with its prefix") {
  Lines c;
  c.write("[unifn] reset failed, the instance is dropped\n");
  c.write("a line with [unifn] inside\n");
  c.console.say("an unknown system call");
  REQUIRE(c.got.size() == 3);
  CHECK(c.got[0] == "\\x5bunifn] reset failed, the instance is dropped");
  CHECK_FALSE(c.got[0].starts_with(Console::kVmmPrefix));
  CHECK(c.got[1] == "a line with [unifn] inside");
  CHECK(c.got[2] == std::string(Console::kVmmPrefix) + "an unknown system call");
}

TEST_CASE("Console escapes what a terminal or a log reader would obey, and keeps printable UTF-8") {
  Lines c;
  // A guest that clears the screen, recolours, retitles the terminal, rings, backspaces over its
  // tag and forges a line of the daemon's after a carriage return.
  c.write("\x1b[2J\x1b[31mred\x1b[0m\n");
  c.write("\x1b]0;owned\x07\n");
  c.write("abc\b\b\bxyz\x7f\n");
  c.write("ok\runifnd: stopped\n");
  c.write(std::string("\x01\x1f\x00", 3) + "\n");
  CHECK(c.got == V{"\\x1b[2J\\x1b[31mred\\x1b[0m", "\\x1b]0;owned\\x07",
                   "abc\\x08\\x08\\x08xyz\\x7f", "ok\\runifnd: stopped", "\\x01\\x1f\\x00"});
  for (const auto& line : c.got)
    for (char ch : line) CHECK((static_cast<unsigned char>(ch) >= 0x20 && ch != 0x7f));

  // UTF-8 text stays readable: é, €, 😀, and a tab.
  Lines u;
  u.write("caf\xc3\xa9\t\xe2\x82\xac \xf0\x9f\x98\x80 \\x1b stays\n");
  CHECK(u.got == V{"caf\xc3\xa9\t\xe2\x82\xac \xf0\x9f\x98\x80 \\x1b stays"});

  // C1 controls in UTF-8 (U+009B is CSI to some terminals, U+0085 a newline) and bytes that are
  // not UTF-8: a lone continuation byte, a truncated sequence, an overlong '/', a surrogate, a
  // raw 8-bit CSI.
  Lines b;
  b.write(
      "\xc2\x9b"
      "31m \xc2\x85 \xc2\xa0.\n");
  b.write(
      "a\x80z \xe2\x82 \xc0\xaf \xed\xa0\x80 \x9b"
      "2J\n");
  CHECK(b.got ==
        V{"\\u009b31m \\u0085 \xc2\xa0.", "a\\x80z \\xe2\\x82 \\xc0\\xaf \\xed\\xa0\\x80 \\x9b2J"});
  CHECK(Console::escape("plain text") == "plain text");
}

TEST_CASE("Console escapes a line cut at 4096 bytes, and the flushed last line") {
  Lines c;
  c.write(std::string(4096, '\x1b') + "\r");
  CHECK(c.got.size() == 1);
  std::string esc;
  for (int i = 0; i < 4096; ++i) esc += "\\x1b";
  CHECK(c.got[0] == esc);
  c.console.flush();
  CHECK(c.got == V{esc, "\\r"});
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

namespace {
using unifn::vmm::ConsoleLimits;

// A console on a clock the test moves, with what reached its sink.
struct Limited : unifn::test::ConsoleLines {
  Console::Clock::time_point now{};
  Console console{[this](std::string_view l) { add(l); }, [this] { return now; }};
  std::size_t write(const std::string& s) {
    return console.write(std::span(reinterpret_cast<const std::uint8_t*>(s.data()),
                                   s.size()));  // Safe: chars as bytes.
  }
};
}  // namespace

TEST_CASE(
    "Console takes at most 64 KiB per write and answers how many, put() drops the rest and says "
    "so") {
  Limited c;
  const std::string ten_mib(10u << 20, 'x');
  CHECK(c.write(ten_mib) == ConsoleLimits::kPerCall);
  CHECK(c.console.bytes_written() == ConsoleLimits::kPerCall);
  c.console.put(std::span(reinterpret_cast<const std::uint8_t*>(ten_mib.data()),
                          ten_mib.size()));  // Safe: chars as bytes.
  CHECK(c.console.bytes_dropped() == ten_mib.size() - ConsoleLimits::kPerCall);
  c.console.end_request();
  CHECK(c.lines.size() == 2 * ConsoleLimits::kPerCall / 4096 +
                              1);  // lines cut at 4096 bytes, the last flushed; the VMM's
  CHECK(c.said("console output over 65536 bytes in one call: 10420224 bytes dropped") == 1);
  CHECK(c.lines.back() ==
        "[unifn] console output over 65536 bytes in one call: 10420224 bytes dropped");
}

TEST_CASE(
    "Console shows 1 MiB per request, drops the rest, says so once per request, and shows the next "
    "request again") {
  Limited c;
  std::string chunk;
  while (chunk.size() < ConsoleLimits::kPerCall) chunk += std::string(1023, 'y') + "\n";
  for (int i = 0; i < 40; ++i) CHECK(c.write(chunk) == chunk.size());  // 2.5 MiB, every byte taken
  CHECK(c.guest_bytes() == ConsoleLimits::kPerRequest);
  CHECK(c.said("console output over") == 0);  // said when the request ends, with the count
  c.console.end_request();
  CHECK(c.said("console output over 1048576 bytes in one request: 1572864 bytes dropped") == 1);
  c.console.end_request();
  CHECK(c.said("console output over") == 1);
  c.now += std::chrono::seconds(10);  // the rate's bucket full again
  c.lines.clear();
  c.write("next\n");
  c.console.end_request();
  CHECK(c.lines == V{"next"});
}

TEST_CASE(
    "Console's rate per instance: a burst of 10000 lines, then 1000 a second, said once per "
    "instance") {
  Limited c;
  std::string lines;
  for (std::size_t i = 0; i < ConsoleLimits::kBurstLines + 5; ++i) lines += "a\n";
  c.write(lines);
  CHECK(c.lines.size() == ConsoleLimits::kBurstLines);
  c.console.end_request();
  CHECK(c.said("console output over 262144 bytes or 1000 lines a second: 10 bytes dropped (said "
               "once per instance)") == 1);
  c.lines.clear();
  c.now += std::chrono::seconds(1);
  c.write(
      std::string(2 * (ConsoleLimits::kLinesPerSecond + 1), '\n'));  // 1001 empty lines, twice over
  CHECK(c.lines.size() == ConsoleLimits::kLinesPerSecond);
  c.console.end_request();
  CHECK(c.said("console output over") == 0);  // the rate said it once already
  CHECK(c.console.bytes_dropped() ==
        10 + 2 * (ConsoleLimits::kLinesPerSecond + 1) - ConsoleLimits::kLinesPerSecond);
}

TEST_CASE(
    "Console: once the call is over (deadline, cancel) the rest of a write is dropped, not handed "
    "to the sink") {
  Limited c;
  int asked = 0;
  c.console.set_stop([&] { return ++asked > 2; });
  CHECK(c.write("one\ntwo\nthree\nfour\n") == 19);
  CHECK(c.lines == V{"one", "two"});
  CHECK(c.console.bytes_dropped() == 11);
}
