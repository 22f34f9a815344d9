// The allow list of callback destinations and the address ranges a callback must not reach by
// default.
#include "src/http/callback_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>
#include <fmt/format.h>
#include <stdexcept>

namespace unifn::http {

namespace {

constexpr std::string_view kPublic = "public";

// One range of special_address(): prefix of the 32 (IPv4) or 128 (IPv6) bits, and its kind.
struct Range4 {
  std::uint32_t base;
  unsigned bits;
  const char* kind;
};
struct Range6 {
  std::array<std::uint8_t, 16> base;
  unsigned bits;
  const char* kind;
};

constexpr std::uint32_t v4(unsigned a, unsigned b, unsigned c, unsigned d) {
  return (a << 24) | (b << 16) | (c << 8) | d;
}

// IANA's special-purpose registry, the ranges that are not globally reachable destinations.
constexpr Range4 kSpecial4[] = {
    {v4(0, 0, 0, 0), 8, "an unspecified address (0.0.0.0/8, which reaches this host)"},
    {v4(10, 0, 0, 0), 8, "a private address (10.0.0.0/8)"},
    {v4(100, 64, 0, 0), 10, "a private address (shared address space 100.64.0.0/10)"},
    {v4(127, 0, 0, 0), 8, "a loopback address"},
    {v4(169, 254, 0, 0), 16,
     "a link-local address (169.254.0.0/16, where cloud metadata services answer)"},
    {v4(172, 16, 0, 0), 12, "a private address (172.16.0.0/12)"},
    {v4(192, 0, 0, 0), 24, "a reserved address (IETF protocol assignments 192.0.0.0/24)"},
    {v4(192, 0, 2, 0), 24, "a documentation address (192.0.2.0/24)"},
    {v4(192, 88, 99, 0), 24, "a reserved address (6to4 relay anycast 192.88.99.0/24)"},
    {v4(192, 168, 0, 0), 16, "a private address (192.168.0.0/16)"},
    {v4(198, 18, 0, 0), 15, "a benchmarking address (198.18.0.0/15)"},
    {v4(198, 51, 100, 0), 24, "a documentation address (198.51.100.0/24)"},
    {v4(203, 0, 113, 0), 24, "a documentation address (203.0.113.0/24)"},
    {v4(224, 0, 0, 0), 4, "a multicast address"},
    {v4(240, 0, 0, 0), 4, "a reserved address (240.0.0.0/4, broadcast included)"},
};

constexpr std::array<std::uint8_t, 16> b6(std::initializer_list<std::uint8_t> head) {
  std::array<std::uint8_t, 16> a{};
  std::size_t i = 0;
  for (auto b : head) a[i++] = b;
  return a;
}

// Checked in order: the first that holds names the kind. The forms that carry an IPv4 address
// (NAT64's 64:ff9b::/96, 6to4's 2002::/16) are handled before this table.
const Range6 kSpecial6[] = {
    {b6({}), 128, "an unspecified address (::, which reaches this host)"},
    {b6({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}), 128, "a loopback address"},
    {b6({}), 96, "a reserved address (IPv4-compatible ::/96, deprecated)"},
    {b6({0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}), 48,
     "a private address (local-use NAT64 64:ff9b:1::/48)"},
    {b6({0x01, 0x00}), 64, "a reserved address (discard-only 100::/64)"},
    {b6({0x20, 0x01, 0x0d, 0xb8}), 32, "a documentation address (2001:db8::/32)"},
    {b6({0xfc}), 7, "a private address (unique local fc00::/7)"},
    {b6({0xfe, 0x80}), 10, "a link-local address (fe80::/10)"},
    {b6({0xfe, 0xc0}), 10, "a private address (site-local fec0::/10, deprecated)"},
    {b6({0xff}), 8, "a multicast address"},
};

bool prefix_match(const std::uint8_t* a, const std::uint8_t* b, unsigned bits) {
  const unsigned whole = bits / 8, rest = bits % 8;
  if (std::memcmp(a, b, whole) != 0) return false;
  if (rest == 0) return true;
  const std::uint8_t mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

std::optional<std::string> special4(std::uint32_t a) {
  for (const auto& r : kSpecial4) {
    const std::uint32_t mask = r.bits == 0 ? 0 : ~0u << (32 - r.bits);
    if ((a & mask) == r.base) return r.kind;
  }
  return std::nullopt;
}

std::uint32_t read_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

std::string v4_text(std::uint32_t a) {
  return fmt::format("{}.{}.{}.{}", a >> 24, (a >> 16) & 0xFF, (a >> 8) & 0xFF, a & 0xFF);
}

// An entry's address part: inet_pton's strict forms only (no "127.1"), so that a typo is an error.
std::optional<IpAddress> parse_strict(const std::string& text) {
  if (text.find(':') != std::string::npos) {
    std::array<std::uint8_t, 16> b{};
    if (inet_pton(AF_INET6, text.c_str(), b.data()) != 1) return std::nullopt;
    return IpAddress::from_v6(b);
  }
  in_addr in{};
  if (inet_pton(AF_INET, text.c_str(), &in) != 1) return std::nullopt;
  return IpAddress::from_v4(ntohl(in.s_addr));
}

// The entry as a range, or what is wrong with it.
struct ParsedEntry {
  IpAddress base;
  unsigned bits = 0;
  std::string error;
};

ParsedEntry parse_entry(std::string_view entry) {
  ParsedEntry out;
  const std::string shown(entry);
  const auto slash = entry.find('/');
  const std::string addr(entry.substr(0, slash));
  auto a = parse_strict(addr);
  if (!a) {
    out.error = fmt::format(
        "'{}' is not an IP address, a CIDR range (such as 10.0.0.0/8 or fd00::/8) or `public`",
        shown);
    return out;
  }
  // An entry written in IPv6 is an IPv6 range, unless it is an IPv4-mapped range
  // (::ffff:a.b.c.d/96+).
  const bool written_v6 = addr.find(':') != std::string::npos;
  const unsigned width = written_v6 ? 128 : 32;
  unsigned bits = width;
  if (slash != std::string_view::npos) {
    auto digits = entry.substr(slash + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
        bits > width) {
      out.error =
          fmt::format("'{}': the prefix length must be a number from 0 to {}", shown, width);
      return out;
    }
  }
  // Bits of a's 128 that the range fixes: an IPv4 range sits under the mapped prefix ::ffff:0:0/96.
  unsigned bits128 = written_v6 ? bits : 96 + bits;
  if (written_v6 && a->v4 && bits < 96) {
    out.error = fmt::format(
        "'{}': a range of IPv4-mapped addresses must be /96 or longer (or written in IPv4)", shown);
    return out;
  }
  // Host bits set are most likely a typo for another range: said, not silently masked.
  IpAddress masked = *a;
  for (unsigned i = 0; i < 128; ++i)
    if (i >= bits128) masked.bytes[i / 8] &= static_cast<std::uint8_t>(~(0x80u >> (i % 8)));
  if (!(masked == *a)) {
    out.error = fmt::format("'{}' has bits set past its /{} prefix (the range starts at {})", shown,
                            bits, masked.str());
    return out;
  }
  out.base = *a;
  out.bits = bits128;
  return out;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  const std::string s(text);
  if (s.empty()) return std::nullopt;
  if (s.find(':') != std::string::npos) {
    std::array<std::uint8_t, 16> b{};
    if (inet_pton(AF_INET6, s.c_str(), b.data()) != 1) return std::nullopt;
    return from_v6(b);
  }
  // inet_aton takes what getaddrinfo takes as a numeric IPv4 host; it also stops at a space,
  // which a callback URL's host cannot hold (CallbackUrl::parse), but refuse one anyway.
  if (s.find_first_of(" \t\n") != std::string::npos) return std::nullopt;
  in_addr in{};
  if (inet_aton(s.c_str(), &in) == 0) return std::nullopt;
  return from_v4(ntohl(in.s_addr));
}

IpAddress IpAddress::from_v4(std::uint32_t host_order) {
  IpAddress a;
  a.v4 = true;
  a.bytes[10] = a.bytes[11] = 0xFF;
  a.bytes[12] = static_cast<std::uint8_t>(host_order >> 24);
  a.bytes[13] = static_cast<std::uint8_t>(host_order >> 16);
  a.bytes[14] = static_cast<std::uint8_t>(host_order >> 8);
  a.bytes[15] = static_cast<std::uint8_t>(host_order);
  return a;
}

IpAddress IpAddress::from_v6(const std::array<std::uint8_t, 16>& bytes) {
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  IpAddress a;
  a.bytes = bytes;
  a.v4 = std::memcmp(bytes.data(), kMapped, sizeof kMapped) == 0;
  return a;
}

std::uint32_t IpAddress::v4_value() const { return read_be32(bytes.data() + 12); }

std::string IpAddress::str() const {
  if (v4) return v4_text(v4_value());
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  return buf;
}

std::optional<std::string> special_address(const IpAddress& a) {
  if (a.v4) return special4(a.v4_value());
  const auto* b = a.bytes.data();
  // Forms that carry an IPv4 address reach what that address reaches (through a translator).
  static constexpr std::uint8_t kNat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (std::memcmp(b, kNat64, sizeof kNat64) == 0) {
    const auto inner = read_be32(b + 12);
    if (auto kind = special4(inner))
      return fmt::format("the NAT64 form of {}, {}", v4_text(inner), *kind);
    return std::nullopt;
  }
  if (b[0] == 0x20 && b[1] == 0x02) {
    const auto inner = read_be32(b + 2);
    if (auto kind = special4(inner))
      return fmt::format("the 6to4 form of {}, {}", v4_text(inner), *kind);
    return std::nullopt;
  }
  for (const auto& r : kSpecial6)
    if (prefix_match(b, r.base.data(), r.bits)) return r.kind;
  return std::nullopt;
}

bool CallbackPolicy::Cidr::contains(const IpAddress& a) const {
  // An IPv6 range never covers IPv4 addresses: ::/0 opens IPv6, not every private IPv4 network.
  return a.v4 == base.v4 && prefix_match(a.bytes.data(), base.bytes.data(), bits);
}

CallbackPolicy::CallbackPolicy(const std::vector<std::string>& allow) : text_(allow) {
  for (const auto& e : allow) {
    if (e == kPublic) {
      public_ = true;
      continue;
    }
    auto p = parse_entry(e);
    if (!p.error.empty()) throw std::invalid_argument(fmt::format("callbacks.allow: {}", p.error));
    cidrs_.push_back({p.base, p.bits});
  }
}

std::optional<std::string> CallbackPolicy::entry_problem(std::string_view entry) {
  if (entry == kPublic) return std::nullopt;
  auto p = parse_entry(entry);
  if (p.error.empty()) return std::nullopt;
  return p.error;
}

std::optional<std::string> CallbackPolicy::refuses(const IpAddress& a) const {
  for (const auto& c : cidrs_)
    if (c.contains(a)) return std::nullopt;
  auto kind = special_address(a);
  if (!kind && public_) return std::nullopt;
  if (kind) return fmt::format("{} is {}, which callbacks.allow does not include", a.str(), *kind);
  return fmt::format("{} is not in callbacks.allow", a.str());
}

std::optional<std::string> CallbackPolicy::refuses_host(std::string_view host) const {
  auto a = IpAddress::parse(host);
  if (!a) return std::nullopt;
  return refuses(*a);
}

}  // namespace unifn::http
