// The one shape of snapshot state (after Firecracker's Persist): typed state, one encoding, check
// before restore.
#pragma once

#include <concepts>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "vmm/snapshot/byte_io.h"

namespace unifn::vmm {

// A state struct with its one byte encoding. read() throws std::runtime_error with a sentence for
// bytes that are no such state (truncated, another version, a count past its limit); whether a
// well-formed state fits a given object is that object's check().
template <typename S>
concept PersistState = requires(const S& s, ByteWriter& w, ByteReader& r) {
  { s.write(w) } -> std::same_as<void>;
  { S::read(r) } -> std::same_as<S>;
};

// An object whose state a snapshot holds. save() gives its typed State; a static
// `std::optional<std::string> check(const State&, <context>)` names what keeps restore() from
// taking a state (its context differs per piece: the heap's bounds, a device's limits); restore()
// after a passing check cannot fail, and refuses (std::invalid_argument, the object unchanged) a
// state whose check fails. The pieces: LinuxSyscalls (HeapState), the virtio transport and its
// device (TransportState), the vCPU (CpuState: Machine::capture/apply,
// Platform::cpu_state_problem).
template <typename T>
concept Persist = PersistState<typename T::State> &&
    requires(const T& c, T& m, const typename T::State& s) {
  { c.save() } -> std::same_as<typename T::State>;
  { m.restore(s) } -> std::same_as<void>;
};

template <PersistState S>
std::vector<std::uint8_t> encode(const S& s) {
  ByteWriter w;
  s.write(w);
  return w.take();
}

// All of bytes must be the state: what follows it is refused as trailing bytes.
template <PersistState S>
S decode(std::span<const std::uint8_t> bytes, const char* what) {
  ByteReader r(bytes);
  S s = S::read(r);
  r.expect_end(what);
  return s;
}

// The version a versioned state writes first, checked on the way back with a sentence naming the
// state.
inline void read_version(ByteReader& r, std::uint32_t expected, const char* what) {
  if (auto v = r.pod<std::uint32_t>(); v != expected)
    throw std::runtime_error(
        fmt::format("{}: format version {} (this VMM reads {})", what, v, expected));
}

}  // namespace unifn::vmm
