// A virtio-accel device driven by hand-made rings in a GuestMemory: a driver for tests, no VM
// needed.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <vector>

#include <unifn/accel_abi.h>

#include "accel/device.h"
#include "vmm/devices/virtio/virtio_mmio.h"
#include "vmm/memory/guest_memory.h"
#include "vmm/platform/fake/fake_machine.h"
#include "accel/reference/reference.h"

namespace unifn::test {

namespace vio = vmm::virtio;

// One descriptor as a test wants it.
struct D {
  std::uint64_t addr = 0;
  std::uint32_t len = 0;
  bool write = false;
};

// One argument of a well-formed request.
struct A {
  std::uint64_t addr = 0;
  std::uint32_t len = 0;
  std::uint32_t type = UNIFN_ACCEL_ARG_RAW;
};

struct Answer {
  std::uint32_t used_len = 0;
  std::uint8_t status = 0xAA;  // what the status byte holds afterwards (0xAA: untouched)
  std::uint16_t used_id = 0;
};

class Harness {
 public:
  // Rings and buffers in the guest's user memory (from layout::kUserLow): the device refuses any
  // below.
  static constexpr std::uint64_t kDesc = 0x11000, kAvail = 0x12000, kUsed = 0x13000,
                                 kData = 0x20000;
  static constexpr std::uint16_t kQueue = 64;

  static constexpr std::uint64_t kWindow = vmm::kMmioWindowBase;

  explicit Harness(std::shared_ptr<accel::Backend> backend = accel::reference::make_backend(),
                   accel::DeviceOptions opts = {}, std::size_t ram = 1u << 20)
      : machine(std::make_unique<vmm::GuestMemory>(ram)),
        mem(machine.memory()),
        dev(std::move(backend), std::move(opts)) {
    dev.attach(machine, kWindow);
  }

  // The guest's machine: its RAM, and cancel() as the daemon calls it when a client goes away.
  vmm::FakeMachine machine;
  vmm::GuestMemory& mem;
  accel::AccelDevice dev;
  std::uint16_t avail_idx = 0;
  std::uint64_t next_free = kData;

  std::uint32_t rd(std::uint64_t reg) { return dev.read32(mem, reg); }
  // Register writes arrive as the guest's traps do: through the machine.
  void wr(std::uint64_t reg, std::uint32_t v) {
    vmm::MmioAccess a{
        kWindow + reg, true,
        std::span(reinterpret_cast<std::uint8_t*>(&v), 4)};  // Safe: a u32 as its bytes.
    if (auto r = dev.access(machine, a); r.stop)
      throw std::runtime_error("the device stopped the guest: " + r.stop->message);
  }

  // The virtio 1.2 driver initialisation sequence (3.1.1) with one queue of kQueue entries.
  void init_driver() {
    using namespace vio;
    wr(reg::kStatus, 0);
    wr(reg::kStatus, status::kAcknowledge | status::kDriver);
    wr(reg::kDriverFeaturesSel, 1);
    wr(reg::kDriverFeatures, 1);
    wr(reg::kStatus, status::kAcknowledge | status::kDriver | status::kFeaturesOk);
    wr(reg::kQueueSel, 0);
    wr(reg::kQueueNum, kQueue);
    wr(reg::kQueueDescLow, kDesc);
    wr(reg::kQueueDriverLow, kAvail);
    wr(reg::kQueueDeviceLow, kUsed);
    wr(reg::kQueueReady, 1);
    wr(reg::kStatus,
       status::kAcknowledge | status::kDriver | status::kFeaturesOk | status::kDriverOk);
    avail_idx = 0;
  }

  // A fresh buffer of len bytes in guest RAM, filled with `fill`.
  std::uint64_t alloc(std::size_t len, std::uint8_t fill = 0, std::size_t align = 16) {
    next_free = (next_free + align - 1) / align * align;
    const std::uint64_t at = next_free;
    next_free += len;
    mem.fill(vmm::GuestAddr(at), fill, len);
    return at;
  }
  template <typename T>
  std::uint64_t put(const T& v) {
    const std::uint64_t at = alloc(sizeof(T));
    mem.write_obj(vmm::GuestAddr(at), v);
    return at;
  }
  template <typename T>
  std::uint64_t put_vec(const std::vector<T>& v) {
    const std::uint64_t at = alloc(v.size() * sizeof(T));
    mem.write(vmm::GuestAddr(at), std::span(reinterpret_cast<const std::uint8_t*>(v.data()),
                                            v.size() * sizeof(T)));  // Safe: POD vector as bytes.
    return at;
  }
  template <typename T>
  T get(std::uint64_t at) const {
    return mem.read_obj<T>(vmm::GuestAddr(at));
  }
  template <typename T>
  std::vector<T> get_vec(std::uint64_t at, std::size_t n) const {
    std::vector<T> v(n);
    mem.read(vmm::GuestAddr(at), std::span(reinterpret_cast<std::uint8_t*>(v.data()),
                                           n * sizeof(T)));  // Safe: POD vector as bytes.
    return v;
  }

  // Writes the descriptors at table slots first, first+1, ... linked in order (or as `links` says:
  // -1 ends the chain there), without publishing them.
  void lay(const std::vector<D>& chain, std::uint16_t first = 0,
           const std::vector<int>& links = {}) {
    for (std::size_t i = 0; i < chain.size(); ++i) {
      const std::uint16_t slot = static_cast<std::uint16_t>((first + i) % kQueue);
      std::uint16_t flags = chain[i].write ? vio::kDescWrite : 0;
      std::uint16_t next = 0;
      if (i < links.size() && links[i] >= 0) {
        flags |= vio::kDescNext;
        next = static_cast<std::uint16_t>(links[i]);
      } else if (i + 1 < chain.size() && links.empty()) {
        flags |= vio::kDescNext;
        next = static_cast<std::uint16_t>((slot + 1) % kQueue);
      }
      write_desc(slot, chain[i].addr, chain[i].len, flags, next);
    }
    if (!chain.empty() && chain.back().len && mem.contains(vmm::GuestAddr(chain.back().addr), 1))
      mem.write_obj<std::uint8_t>(vmm::GuestAddr(chain.back().addr), 0xAA);
  }

  // lay(), then publishes `head` (default: first), notifies, and reads the answer back from the
  // used ring.
  Answer submit(const std::vector<D>& chain, std::uint16_t first = 0,
                const std::vector<int>& links = {}, std::optional<std::uint16_t> head = {}) {
    lay(chain, first, links);
    return publish(head.value_or(first), chain.empty() ? 0 : chain.back().addr);
  }

  void write_desc(std::uint16_t slot, std::uint64_t addr, std::uint32_t len, std::uint16_t flags,
                  std::uint16_t next) {
    struct {
      std::uint64_t addr;
      std::uint32_t len;
      std::uint16_t flags, next;
    } d{addr, len, flags, next};
    mem.write_obj(vmm::GuestAddr(kDesc + 16ull * slot), d);
  }

  Answer publish(std::uint16_t head, std::uint64_t status_addr) {
    return publish_all({head}, {status_addr}).at(0);
  }

  // Publishes every head, then notifies once: the device serves them all inside that one exit.
  std::vector<Answer> publish_all(const std::vector<std::uint16_t>& heads,
                                  const std::vector<std::uint64_t>& status_addrs) {
    const std::uint16_t used_before = get<std::uint16_t>(kUsed + 2);
    for (auto head : heads) {
      mem.write_obj<std::uint16_t>(vmm::GuestAddr(kAvail + 4 + 2ull * (avail_idx % kQueue)), head);
      ++avail_idx;
    }
    mem.write_obj<std::uint16_t>(vmm::GuestAddr(kAvail + 2), avail_idx);
    wr(vio::reg::kQueueNotify, 0);
    const std::uint16_t used_after = get<std::uint16_t>(kUsed + 2);
    if (used_after == used_before) throw std::runtime_error("the device did not answer");
    std::vector<Answer> out;
    for (std::uint16_t i = 0; i < static_cast<std::uint16_t>(used_after - used_before); ++i) {
      const std::uint64_t at = kUsed + 4 + 8ull * ((used_before + i) % kQueue);
      Answer a;
      a.used_id = static_cast<std::uint16_t>(get<std::uint32_t>(at));
      a.used_len = get<std::uint32_t>(at + 4);
      // The device serves the available ring in order: the i-th answer is the i-th chain published.
      if (i < status_addrs.size() && status_addrs[i] &&
          mem.contains(vmm::GuestAddr(status_addrs[i]), 1))
        a.status = get<std::uint8_t>(status_addrs[i]);
      out.push_back(a);
    }
    return out;
  }

  // Lays the chains one after another in the descriptor table and submits them with one notify.
  std::vector<Answer> submit_all(const std::vector<std::vector<D>>& chains) {
    std::vector<std::uint16_t> heads;
    std::vector<std::uint64_t> status;
    std::uint16_t slot = 0;
    for (const auto& c : chains) {
      lay(c, slot);
      heads.push_back(slot);
      status.push_back(c.back().addr);
      slot = static_cast<std::uint16_t>((slot + c.size()) % kQueue);
    }
    return publish_all(heads, status);
  }

  // The descriptors of a well-formed request (header, argument headers, arguments, status).
  std::vector<D> chain_for(std::uint32_t cmd, std::uint32_t sess, std::uint32_t op,
                           const std::vector<A>& reads, const std::vector<A>& writes) {
    unifn_accel_req req{++request_id,
                        sess,
                        cmd,
                        op,
                        static_cast<std::uint32_t>(reads.size()),
                        static_cast<std::uint32_t>(writes.size()),
                        0};
    std::vector<D> c{{put(req), sizeof req, false}};
    std::vector<unifn_accel_arg> hdrs;
    for (const auto& a : reads) hdrs.push_back({a.len, a.type});
    for (const auto& a : writes) hdrs.push_back({a.len, a.type});
    if (!hdrs.empty())
      c.push_back({put_vec(hdrs), static_cast<std::uint32_t>(hdrs.size() * sizeof(unifn_accel_arg)),
                   false});
    for (const auto& a : reads) c.push_back({a.addr, a.len, false});
    for (const auto& a : writes) c.push_back({a.addr, a.len, true});
    c.push_back({alloc(1, 0xAA), 1, true});
    return c;
  }

  Answer request(std::uint32_t cmd, std::uint32_t sess, std::uint32_t op,
                 const std::vector<A>& reads = {}, const std::vector<A>& writes = {}) {
    return submit(chain_for(cmd, sess, op, reads, writes));
  }

  std::uint32_t open_session(std::uint32_t flags = 0) {
    const auto f = put(flags);
    const auto id = alloc(4);
    auto a = request(UNIFN_ACCEL_CMD_CREATE_SESSION, 0, 0, {{f, 4, UNIFN_ACCEL_ARG_UINT32}},
                     {{id, 4, UNIFN_ACCEL_ARG_UINT32}});
    if (a.status != UNIFN_ACCEL_OK)
      throw std::runtime_error("CREATE_SESSION failed: " + dev.last_error());
    return get<std::uint32_t>(id);
  }

  std::uint64_t request_id = 0;
};

}  // namespace unifn::test
