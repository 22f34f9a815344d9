// Where async results may be POSTed: the allow list of callback destinations (callbacks.allow).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace unifn::http {

// An IP address as 16 bytes; an IPv4 address (and an IPv4-mapped IPv6 address, ::ffff:a.b.c.d,
// which reaches the same host) is held in its mapped form with v4 set, so that one rule covers
// both.
struct IpAddress {
  std::array<std::uint8_t, 16> bytes{};
  bool v4 = false;

  // "203.0.113.7", "2001:db8::1", "::ffff:127.0.0.1"; also the forms a resolver takes for IPv4
  // (inet_aton: "127.1", "0x7f.0.0.1", "2130706433"), since those reach the same hosts. nullopt
  // for anything else (a host name).
  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress from_v4(std::uint32_t host_order);
  static IpAddress from_v6(
      const std::array<std::uint8_t, 16>& bytes);  // a mapped address becomes v4
  std::uint32_t v4_value() const;                  // host order; meaningful when v4
  std::string str() const;
  bool operator==(const IpAddress&) const = default;
};

// The kind of address a callback must not reach unless the allow list names it, with the words
// for the refusal ("a loopback address"); nullopt for a public (globally routed) address.
// Covers loopback, link-local (169.254.0.0/16 holds cloud metadata services), private (10/8,
// 172.16/12, 192.168/16, 100.64/10, fc00::/7), unspecified, multicast, documentation, benchmarking
// and reserved ranges, and IPv6 forms that carry an IPv4 address (mapped, NAT64 64:ff9b::/96,
// 6to4 2002::/16) by the IPv4 address they carry.
std::optional<std::string> special_address(const IpAddress& a);

// callbacks.allow: each entry a CIDR ("10.1.0.0/16", "2001:db8::/32"), an address (a /32 or /128),
// or the word `public`, every address special_address() lets through. The default is [public]:
// loopback, link-local and private ranges are refused. An IPv4 entry also covers the IPv4-mapped
// IPv6 form of its addresses.
class CallbackPolicy {
 public:
  CallbackPolicy() : CallbackPolicy(std::vector<std::string>{"public"}) {}
  // Throws std::invalid_argument naming the first entry that is not valid (see entry_problem).
  explicit CallbackPolicy(const std::vector<std::string>& allow);

  // What is wrong with one entry, as the tail of a "callbacks.allow: ..." sentence; nullopt if
  // valid.
  static std::optional<std::string> entry_problem(std::string_view entry);

  // Why a callback may not go to a; nullopt when it may. The reason names the address and its kind:
  // "127.0.0.1 is a loopback address, which callbacks.allow does not include".
  std::optional<std::string> refuses(const IpAddress& a) const;
  // The same for the host of a callback URL when it is an address literal; nullopt for a name (it
  // is checked address by address once resolved) and for an allowed literal.
  std::optional<std::string> refuses_host(std::string_view host) const;

  const std::vector<std::string>& allow() const { return text_; }

 private:
  struct Cidr {
    IpAddress base;
    unsigned bits = 0;  // of the 128 (an IPv4 entry counts from the mapped prefix: 96 + its own)
    bool contains(const IpAddress& a) const;
  };
  std::vector<std::string> text_;
  std::vector<Cidr> cidrs_;
  bool public_ = false;
};

}  // namespace unifn::http
