// Guest RAM: one host mapping, accessed only through checked guest-physical addresses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "vmm/x86/layout.h"

namespace unifn::vmm {

// A guest-physical address. A distinct type so that a host pointer or a length can never be
// passed where a guest address is expected.
struct GuestAddr {
  std::uint64_t value = 0;
  constexpr GuestAddr() = default;
  constexpr explicit GuestAddr(std::uint64_t v) : value(v) {}
  constexpr GuestAddr operator+(std::uint64_t off) const { return GuestAddr(value + off); }
  constexpr auto operator<=>(const GuestAddr&) const = default;
};

std::string to_string(GuestAddr addr);  // "0x1234"

// Thrown when a guest hands an address or length outside its RAM; the message names both.
class GuestMemoryError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class GuestMemory {
 public:
  // Anonymous zeroed RAM of `bytes` (a multiple of 4 KiB).
  explicit GuestMemory(std::size_t bytes);
  // RAM whose first file_bytes come from fd, mapped copy-on-write (MAP_PRIVATE): pages load on
  // demand and stay shared with every other mapping of the same file until written.
  GuestMemory(std::size_t bytes, int fd, std::size_t file_bytes);
  // RAM in a memfd mapped MAP_SHARED, so that another process (the sandbox's guest) can map the
  // same pages. When initial is given (a snapshot's RAM file, as big as RAM) its data is copied
  // in, and discard() brings those bytes back.
  static std::unique_ptr<GuestMemory> shared(std::size_t bytes, int initial_fd = -1);
  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  std::size_t size() const { return size_; }
  // The memfd of shared RAM (guest-physical address == file offset); -1 for private RAM.
  int shared_fd() const { return shared_fd_; }
  // The ranges [start, end) that may hold non-zero bytes: all of RAM, or for shared RAM only the
  // memfd's populated extents (reading a hole of a shared mapping would allocate it).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> populated() const;
  // The bytes of RAM this VM holds for itself, beyond what it shares with the snapshot file and
  // other instances: for shared RAM (the sandbox) the memfd's allocated pages, all this VM's own
  // (the snapshot's bytes are copied in, and the guest process maps the same pages); for private
  // RAM (KVM) the pages written since the mapping was made (copy-on-write copies, anonymous
  // pages), counted from /proc/self/pagemap. 0 when that cannot be read. Costs a read of 8 bytes
  // per page of private RAM, a fstat for shared RAM.
  std::uint64_t private_bytes() const;
  // Host address of guest-physical 0, for KVM_SET_USER_MEMORY_REGION only.
  std::uint64_t host_base_for_kvm() const;

  // True when [addr, addr+len) lies inside RAM, with no overflow.
  bool contains(GuestAddr addr, std::uint64_t len) const {
    return addr.value <= size_ && len <= size_ - addr.value;
  }
  // Throws GuestMemoryError naming `what` unless [addr, addr+len) is inside RAM.
  void check(GuestAddr addr, std::uint64_t len, const char* what = "access") const;

  // True when [addr, addr+len) lies in the guest's user memory [layout::kUserLow, size()), with no
  // overflow: the one range a guest may hand the VMM (a system call's buffer, a hypercall's
  // argument, a virtqueue's rings and buffers). Below it lie the VMM's own pages (GDT, IDT, stubs,
  // page tables on KVM), which ring 3 cannot touch; the VMM must not touch them on its behalf.
  bool user_contains(GuestAddr addr, std::uint64_t len) const {
    return addr.value >= layout::kUserLow && contains(addr, len);
  }
  // Throws GuestMemoryError naming `what` unless user_contains(addr, len).
  void check_user(GuestAddr addr, std::uint64_t len, const char* what) const;
  // check_user, then span: a view of guest-given memory.
  std::span<std::uint8_t> user_span(GuestAddr addr, std::uint64_t len, const char* what) {
    check_user(addr, len, what);
    return span(addr, len, what);
  }
  std::span<const std::uint8_t> user_span(GuestAddr addr, std::uint64_t len,
                                          const char* what) const {
    check_user(addr, len, what);
    return span(addr, len, what);
  }

  // A checked view of guest bytes; valid while this GuestMemory lives.
  // Writable view; the pages it covers count as written by the host (see take_host_dirty).
  std::span<std::uint8_t> span(GuestAddr addr, std::uint64_t len, const char* what = "access");
  std::span<const std::uint8_t> span(GuestAddr addr, std::uint64_t len,
                                     const char* what = "access") const;

  void read(GuestAddr addr, std::span<std::uint8_t> out) const;
  void write(GuestAddr addr, std::span<const std::uint8_t> in);
  void fill(GuestAddr addr, std::uint8_t byte, std::uint64_t len);

  template <typename T>
  T read_obj(GuestAddr addr) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T out;
    std::memcpy(&out, span(addr, sizeof(T), "read").data(), sizeof(T));
    return out;
  }
  template <typename T>
  void write_obj(GuestAddr addr, const T& obj) {
    static_assert(std::is_trivially_copyable_v<T>);
    std::memcpy(span(addr, sizeof(T), "write").data(), &obj, sizeof(T));
  }
  // The same at a guest-given address (check_user).
  template <typename T>
  T read_user(GuestAddr addr, const char* what) const {
    check_user(addr, sizeof(T), what);
    return read_obj<T>(addr);
  }
  template <typename T>
  void write_user(GuestAddr addr, const T& obj, const char* what) {
    check_user(addr, sizeof(T), what);
    write_obj(addr, obj);
  }

  // Pages the host (the VMM) wrote since the last call, as page numbers; KVM's dirty log only
  // sees the guest's own writes, so a reset needs both.
  void track_host_writes(bool on);
  std::vector<std::uint64_t> take_host_dirty();
  // A NUL-terminated string of at most max bytes starting at addr.
  std::string read_cstr(GuestAddr addr, std::size_t max) const;

  // Returns [addr, addr+len) to its initial contents (zero, or the backing file's bytes) and lets
  // the kernel drop the private pages; both ends must be page-aligned.
  void discard(GuestAddr addr, std::uint64_t len);
  // Makes [addr, addr+len) read as zero, as fresh anonymous memory does (mmap, brk). Over a
  // snapshot file discard() alone would bring back the file's bytes, so pages still non-zero
  // there are cleared through span() and so count as host-written for the next reset.
  void zero(GuestAddr addr, std::uint64_t len);

 private:
  GuestMemory() = default;
  void mark(std::uint64_t addr, std::uint64_t len);
  void punch(std::uint64_t addr, std::uint64_t len);
  void copy_initial(std::uint64_t addr, std::uint64_t len);  // shared RAM: initial_fd_'s bytes back
  // The first data extent [from, to) of initial_fd_ at or after off, cut at end; {end, end} when
  // none.
  std::pair<std::uint64_t, std::uint64_t> next_data(std::uint64_t off, std::uint64_t end) const;
  std::uint8_t* base_ = nullptr;
  int shared_fd_ = -1;   // owned
  int initial_fd_ = -1;  // owned (a dup) snapshot RAM file: what discard() restores in shared RAM,
                         // where zero() looks
  std::size_t size_ = 0;
  std::size_t file_bytes_ = 0;  // the first file_bytes_ of RAM come from a file
  bool tracking_ = false;
  std::vector<std::uint64_t> host_dirty_;  // bitmap, one bit per page
};

}  // namespace unifn::vmm
