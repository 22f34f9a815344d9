// Split virtqueue: ring layout checks, chain walks that refuse loops, stray indices and out-of-RAM
// buffers.
#include "vmm/devices/virtio/virtqueue.h"

#include <atomic>
#include <fmt/format.h>

#include "vmm/devices/virtio/virtio_mmio.h"

namespace unifn::vmm::virtio {

namespace {

// The in-memory layout of one descriptor (virtio 1.2, 2.7.5).
struct RawDesc {
  std::uint64_t addr;
  std::uint32_t len;
  std::uint16_t flags;
  std::uint16_t next;
};
static_assert(sizeof(RawDesc) == 16);

struct UsedElem {
  std::uint32_t id;
  std::uint32_t len;
};

// "the guest's user memory (0x10000-0x4000000)": where rings and buffers must lie.
std::string user_memory(const GuestMemory& mem) {
  return fmt::format("the guest's user memory ({:#x}-{:#x})", layout::kUserLow, mem.size());
}

bool overlap(const Descriptor& a, const Descriptor& b) {
  if (a.len == 0 || b.len == 0) return false;
  return a.addr < b.addr + b.len && b.addr < a.addr + a.len;
}

}  // namespace

std::optional<Descriptor> Chain::status_slot(const GuestMemory& mem) const {
  if (!complete || descs.empty()) return std::nullopt;
  const Descriptor& last = descs.back();
  if (!last.writable || last.len == 0 || !mem.user_contains(GuestAddr(last.addr), last.len))
    return std::nullopt;
  return last;
}

std::string SplitQueue::check_layout(const GuestMemory& mem) const {
  const std::uint64_t n = s_.num;
  if (n == 0 || n > num_max_ || (n & (n - 1)) != 0)
    return fmt::format("queue size {} is not a power of two between 1 and {}", n, num_max_);
  if (s_.desc % 16 || !mem.user_contains(GuestAddr(s_.desc), 16 * n))
    return fmt::format("descriptor table at {:#x} ({} bytes) is misaligned or outside {}", s_.desc,
                       16 * n, user_memory(mem));
  if (s_.avail % 2 || !mem.user_contains(GuestAddr(s_.avail), 6 + 2 * n))
    return fmt::format("available ring at {:#x} ({} bytes) is misaligned or outside {}", s_.avail,
                       6 + 2 * n, user_memory(mem));
  if (s_.used % 4 || !mem.user_contains(GuestAddr(s_.used), 6 + 8 * n))
    return fmt::format("used ring at {:#x} ({} bytes) is misaligned or outside {}", s_.used,
                       6 + 8 * n, user_memory(mem));
  return {};
}

Chain SplitQueue::walk(const GuestMemory& mem, std::uint16_t head) const {
  Chain c;
  c.head = head;
  const std::uint16_t n = s_.num;
  if (head >= n) {
    c.error =
        fmt::format("the available ring names descriptor {}, outside the queue of {}", head, n);
    return c;
  }
  bool seen_writable = false;
  std::uint16_t idx = head;
  // A chain can have at most n descriptors; one more means the driver linked a loop.
  for (std::uint32_t count = 0;; ++count) {
    if (count == n) {
      c.error = fmt::format("the chain at descriptor {} is longer than the queue of {} (a loop)",
                            head, n);
      return c;
    }
    const auto d = mem.read_obj<RawDesc>(GuestAddr(s_.desc + 16ull * idx));
    Descriptor out{d.addr, d.len, (d.flags & kDescWrite) != 0};
    if (c.error.empty()) {
      if (d.flags & kDescIndirect)
        c.error =
            fmt::format("descriptor {} is indirect, a feature this device does not offer", idx);
      else if (!mem.user_contains(GuestAddr(d.addr), d.len))
        c.error = fmt::format("descriptor {} names {} bytes at {:#x}, outside {}", idx, d.len,
                              d.addr, user_memory(mem));
      else if (seen_writable && !out.writable)
        c.error =
            fmt::format("descriptor {} is device-readable but follows a device-writable one", idx);
    }
    seen_writable = seen_writable || out.writable;
    c.descs.push_back(out);
    if (!(d.flags & kDescNext)) break;
    if (d.next >= n) {
      if (c.error.empty())
        c.error = fmt::format("descriptor {} links to {}, outside the queue of {}", idx, d.next, n);
      return c;  // incomplete: its end is unknown
    }
    idx = d.next;
  }
  c.complete = true;
  if (!c.error.empty()) return c;
  // A buffer the device writes must not alias any other buffer of the request.
  for (std::size_t i = 0; i < c.descs.size(); ++i) {
    if (!c.descs[i].writable) continue;
    for (std::size_t j = 0; j < c.descs.size(); ++j) {
      if (i != j && overlap(c.descs[i], c.descs[j])) {
        c.error = fmt::format(
            "buffer {} of the chain ({} bytes at {:#x}, device-writable) overlaps buffer {} ({} "
            "bytes at {:#x})",
            i, c.descs[i].len, c.descs[i].addr, j, c.descs[j].len, c.descs[j].addr);
        return c;
      }
    }
  }
  return c;
}

std::optional<Chain> SplitQueue::pop(const GuestMemory& mem) {
  const auto avail_idx = mem.read_obj<std::uint16_t>(GuestAddr(s_.avail + 2));
  const std::uint16_t pending = static_cast<std::uint16_t>(avail_idx - s_.last_avail);
  if (pending == 0) return std::nullopt;
  if (pending > s_.num)
    throw QueueError(fmt::format(
        "the available ring index {} is {} entries ahead of the device, more than the queue of {}",
        avail_idx, pending, s_.num));
  std::atomic_thread_fence(
      std::memory_order_acquire);  // ring entry after index, as the driver wrote them
  const auto head =
      mem.read_obj<std::uint16_t>(GuestAddr(s_.avail + 4 + 2ull * (s_.last_avail % s_.num)));
  ++s_.last_avail;
  return walk(mem, head);
}

void SplitQueue::push_used(GuestMemory& mem, std::uint16_t head, std::uint32_t len) {
  mem.write_obj(GuestAddr(s_.used + 4 + 8ull * (s_.used_idx % s_.num)), UsedElem{head, len});
  std::atomic_thread_fence(
      std::memory_order_release);  // the element before the index that publishes it
  ++s_.used_idx;
  mem.write_obj(GuestAddr(s_.used + 2), s_.used_idx);
}

}  // namespace unifn::vmm::virtio
