// Line buffering for guest console output within its limits, and the escaping of what a terminal or
// a log reader would obey.
#include "vmm/devices/console.h"

#include <algorithm>
#include <fmt/format.h>

namespace unifn::vmm {

namespace {

constexpr char kHex[] = "0123456789abcdef";

void hex_escape(std::string& out, unsigned char c) {
  out += "\\x";
  out += kHex[c >> 4];
  out += kHex[c & 0xF];
}

// The length of the valid UTF-8 sequence at s[i] (2 to 4; no overlong form, surrogate or code
// point past U+10FFFF), or 0 when there is none.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](std::size_t k) { return k < s.size() && (at(k) & 0xC0) == 0x80; };
  const unsigned char c = at(i);
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    if (c == 0xE0 && at(i + 1) < 0xA0) return 0;   // overlong
    if (c == 0xED && at(i + 1) >= 0xA0) return 0;  // UTF-16 surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    if (c == 0xF0 && at(i + 1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && at(i + 1) >= 0x90) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

}  // namespace

std::string Console::escape(std::string_view line) {
  std::string out;
  out.reserve(line.size());
  std::size_t i = 0;
  if (line.starts_with(kVmmPrefix)) {
    hex_escape(out, static_cast<unsigned char>(line[0]));
    i = 1;
  }
  while (i < line.size()) {
    const auto c = static_cast<unsigned char>(line[i]);
    if (c == '\t' || (c >= 0x20 && c < 0x7F)) {
      out += static_cast<char>(c);
      ++i;
    } else if (c == '\r') {
      out += "\\r";
      ++i;
    } else if (c < 0x80) {  // the other C0 controls (ESC, BEL, BS, NUL...) and DEL
      hex_escape(out, c);
      ++i;
    } else if (auto n = utf8_sequence(line, i); n == 0) {  // not UTF-8: each byte on its own
      hex_escape(out, c);
      ++i;
    } else if (n == 2 && c == 0xC2 && static_cast<unsigned char>(line[i + 1]) < 0xA0) {
      // A C1 control (U+0080-U+009F): some terminals obey U+009B as CSI, U+0085 as a newline.
      const auto cp = static_cast<unsigned char>(line[i + 1]);
      out += "\\u00";
      out += kHex[cp >> 4];
      out += kHex[cp & 0xF];
      i += 2;
    } else {
      out.append(line.substr(i, n));
      i += n;
    }
  }
  return out;
}

Console::Console(Sink sink, std::function<Clock::time_point()> clock)
    : sink_(std::move(sink)), clock_(std::move(clock)), refilled_(clock_()) {}

void Console::refill() {
  const auto now = clock_();
  const double seconds = std::chrono::duration<double>(now - refilled_).count();
  if (seconds <= 0) return;
  refilled_ = now;
  byte_tokens_ = std::min<double>(ConsoleLimits::kBurstBytes,
                                  byte_tokens_ + seconds * ConsoleLimits::kBytesPerSecond);
  line_tokens_ = std::min<double>(ConsoleLimits::kBurstLines,
                                  line_tokens_ + seconds * ConsoleLimits::kLinesPerSecond);
}

void Console::emit(bool newline) {
  const std::size_t bytes = line_.size() + (newline ? 1 : 0);
  if (line_tokens_ < 1 || byte_tokens_ < static_cast<double>(bytes)) {
    over_rate_ += bytes;
    dropped_ += bytes;
  } else {
    line_tokens_ -= 1;
    byte_tokens_ -= static_cast<double>(bytes);
    if (sink_) sink_(escape(line_));
  }
  line_.clear();
}

std::size_t Console::write(std::span<const std::uint8_t> bytes) {
  const std::size_t n = std::min(bytes.size(), ConsoleLimits::kPerCall);
  taken_ += n;
  // Beyond the request's limit bytes are counted, not even looked at.
  const std::size_t shown = std::min(
      n, ConsoleLimits::kPerRequest - std::min(request_bytes_, ConsoleLimits::kPerRequest));
  request_bytes_ += n;
  over_request_ += n - shown;
  dropped_ += n - shown;
  refill();
  for (std::size_t i = 0; i < shown; ++i) {
    const auto b = bytes[i];
    if (b == '\n' || line_.size() >= kMaxLine) {
      if (stop_ && stop_()) {  // out of time: the rest of this write is dropped with the line begun
        dropped_ += line_.size() + (shown - i);
        line_.clear();
        break;
      }
      emit(b == '\n');
      if (b == '\n') continue;
    }
    line_.push_back(static_cast<char>(b));
  }
  return n;
}

void Console::put(std::span<const std::uint8_t> bytes) {
  const std::size_t rest = bytes.size() - write(bytes);
  over_call_ += rest;
  dropped_ += rest;
}

void Console::flush() {
  if (!line_.empty()) emit(false);
}

void Console::say(std::string_view text) {
  flush();
  if (sink_) sink_(fmt::format("{}{}", kVmmPrefix, text));
}

void Console::end_request() {
  flush();
  if (over_request_)
    say(fmt::format("console output over {} bytes in one request: {} bytes dropped",
                    ConsoleLimits::kPerRequest, over_request_));
  if (over_call_)
    say(fmt::format("console output over {} bytes in one call: {} bytes dropped",
                    ConsoleLimits::kPerCall, over_call_));
  if (over_rate_ && !rate_said_) {
    say(
        fmt::format("console output over {} bytes or {} lines a second: {} bytes dropped (said "
                    "once per instance)",
                    ConsoleLimits::kBytesPerSecond, ConsoleLimits::kLinesPerSecond, over_rate_));
    rate_said_ = true;
  }
  request_bytes_ = over_request_ = over_call_ = over_rate_ = 0;
}

}  // namespace unifn::vmm
