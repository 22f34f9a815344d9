// Guest RAM mapping and its bounds-checked accessors.
#include "vmm/memory/guest_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <utility>
#include <fmt/format.h>

namespace unifn::vmm {

std::string to_string(GuestAddr addr) { return fmt::format("{:#x}", addr.value); }

namespace {
constexpr std::size_t kPage = 4096;

void require_pages(std::size_t bytes) {
  if (bytes == 0 || bytes % kPage != 0)
    throw std::invalid_argument(
        fmt::format("guest RAM of {} bytes is not a whole number of 4 KiB pages", bytes));
}
}  // namespace

GuestMemory::GuestMemory(std::size_t bytes) : size_(bytes) {
  require_pages(bytes);
  // Safe: a fresh private anonymous mapping that only this object owns and unmaps.
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    throw std::system_error(errno, std::generic_category(),
                            fmt::format("mmap of {} bytes of guest RAM", bytes));
  base_ = static_cast<std::uint8_t*>(p);
}

GuestMemory::GuestMemory(std::size_t bytes, int fd, std::size_t file_bytes)
    : size_(bytes), file_bytes_(file_bytes) {
  require_pages(bytes);
  if (file_bytes > bytes) throw std::invalid_argument("snapshot RAM file is larger than guest RAM");
  // Safe: reserve the whole range privately first, then overlay the file's pages with
  // MAP_FIXED inside the range we own; writes never reach the file (MAP_PRIVATE).
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap of guest RAM");
  base_ = static_cast<std::uint8_t*>(p);
  std::size_t mapped = (file_bytes + kPage - 1) / kPage * kPage;
  if (mapped > 0) {
    // Safe: fixed mapping over the first `mapped` bytes of the range reserved above.
    void* q = mmap(base_, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0);
    initial_fd_ =
        q == MAP_FAILED ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0);  // zero() asks it where its data is
    if (initial_fd_ < 0) {
      int e = errno;
      munmap(base_, size_);
      throw std::system_error(e, std::generic_category(), "mapping the snapshot RAM file");
    }
  }
}

std::unique_ptr<GuestMemory> GuestMemory::shared(std::size_t bytes, int initial_fd) {
  require_pages(bytes);
  std::unique_ptr<GuestMemory> m(new GuestMemory());
  m->size_ = bytes;
  m->shared_fd_ = memfd_create("unifn-guest-ram", MFD_CLOEXEC);
  if (m->shared_fd_ < 0)
    throw std::system_error(errno, std::generic_category(), "memfd_create for guest RAM");
  if (ftruncate(m->shared_fd_, static_cast<off_t>(bytes)) != 0)
    throw std::system_error(errno, std::generic_category(),
                            fmt::format("sizing {} bytes of guest RAM", bytes));
  // Safe: a fresh shared mapping of our own memfd, owned and unmapped by this object.
  void* p =
      mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->shared_fd_, 0);
  if (p == MAP_FAILED)
    throw std::system_error(errno, std::generic_category(),
                            fmt::format("mmap of {} bytes of guest RAM", bytes));
  m->base_ = static_cast<std::uint8_t*>(p);
  if (initial_fd >= 0) {
    m->initial_fd_ = fcntl(initial_fd, F_DUPFD_CLOEXEC, 0);
    if (m->initial_fd_ < 0)
      throw std::system_error(errno, std::generic_category(), "dup of the snapshot RAM file");
    m->copy_initial(0, bytes);
  }
  return m;
}

GuestMemory::~GuestMemory() {
  if (base_) munmap(base_, size_);
  if (shared_fd_ >= 0) ::close(shared_fd_);
  if (initial_fd_ >= 0) ::close(initial_fd_);
}

void GuestMemory::punch(std::uint64_t addr, std::uint64_t len) {
  if (len == 0) return;
  // A hole reads as zero, in this mapping and in every other process's mapping of the memfd.
  if (fallocate(shared_fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(addr),
                static_cast<off_t>(len)) != 0)
    throw std::system_error(errno, std::generic_category(), "punching a hole in guest RAM");
}

std::pair<std::uint64_t, std::uint64_t> GuestMemory::next_data(std::uint64_t off,
                                                               std::uint64_t end) const {
  off_t data = lseek(initial_fd_, static_cast<off_t>(off), SEEK_DATA);
  const std::uint64_t from =
      data < 0 ? end : std::min<std::uint64_t>(static_cast<std::uint64_t>(data), end);
  if (from >= end) return {end, end};
  off_t hole = lseek(initial_fd_, static_cast<off_t>(from), SEEK_HOLE);
  return {from, hole < 0 ? end : std::min<std::uint64_t>(static_cast<std::uint64_t>(hole), end)};
}

void GuestMemory::copy_initial(std::uint64_t addr, std::uint64_t len) {
  const std::uint64_t end = addr + len;
  for (std::uint64_t off = addr; off < end;) {
    // Only the file's data extents are copied; its holes become holes here too.
    const auto [from, to] = next_data(off, end);
    if (from > off) punch(off, from - off);
    if (from >= end) break;
    for (std::uint64_t at = from; at < to;) {
      ssize_t n = pread(initial_fd_, base_ + at, to - at, static_cast<off_t>(at));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        throw std::system_error(n < 0 ? errno : EIO, std::generic_category(),
                                "reading the snapshot RAM file");
      at += static_cast<std::uint64_t>(n);
    }
    off = to;
  }
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> GuestMemory::populated() const {
  if (shared_fd_ < 0) return {{0, size_}};
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  for (std::uint64_t off = 0; off < size_;) {
    off_t data = lseek(shared_fd_, static_cast<off_t>(off), SEEK_DATA);
    if (data < 0 || static_cast<std::uint64_t>(data) >= size_) break;
    off_t hole = lseek(shared_fd_, data, SEEK_HOLE);
    std::uint64_t to =
        hole < 0 ? size_ : std::min<std::uint64_t>(static_cast<std::uint64_t>(hole), size_);
    out.emplace_back(static_cast<std::uint64_t>(data), to);
    off = to;
  }
  return out;
}

std::uint64_t GuestMemory::private_bytes() const {
  if (shared_fd_ >= 0) {
    struct stat st {};
    // st_blocks counts 512-byte units whatever the file system's block size (stat(2)).
    return fstat(shared_fd_, &st) == 0 ? static_cast<std::uint64_t>(st.st_blocks) * 512 : 0;
  }
  // One 64-bit entry per virtual page (Documentation/admin-guide/mm/pagemap.rst): bit 63 present,
  // bit 62 swapped, bit 61 a file page or shared anonymous page. A page present or swapped and
  // not a file page is a private copy: written by the guest or the VMM since the mapping was
  // made. (A never-written anonymous page the guest only read maps the shared zero page, which
  // also reads as not a file page; it costs no memory but is counted.)
  constexpr std::uint64_t kPresent = 1ull << 63, kSwapped = 1ull << 62, kFile = 1ull << 61;
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  std::uint64_t pages = 0;
  std::vector<std::uint64_t> entries(4096);
  // Safe: the address is only used as an index into pagemap, never dereferenced.
  const auto first = reinterpret_cast<std::uintptr_t>(base_) / kPage;
  for (std::uint64_t page = 0; page < size_ / kPage;) {
    const std::uint64_t want = std::min<std::uint64_t>(entries.size(), size_ / kPage - page);
    const ssize_t n = pread(fd, entries.data(), want * sizeof(std::uint64_t),
                            static_cast<off_t>((first + page) * sizeof(std::uint64_t)));
    if (n <= 0) break;
    const auto got = static_cast<std::uint64_t>(n) / sizeof(std::uint64_t);
    for (std::uint64_t i = 0; i < got; ++i)
      if ((entries[i] & (kPresent | kSwapped)) && !(entries[i] & kFile)) ++pages;
    page += got;
  }
  ::close(fd);
  return pages * kPage;
}

std::uint64_t GuestMemory::host_base_for_kvm() const {
  // Safe: KVM wants the host virtual address as an integer; it is never dereferenced as one.
  return reinterpret_cast<std::uint64_t>(base_);
}

void GuestMemory::check(GuestAddr addr, std::uint64_t len, const char* what) const {
  if (!contains(addr, len))
    throw GuestMemoryError(
        fmt::format("guest {} of {} bytes at {} is outside guest RAM (0x0-{:#x})", what, len,
                    to_string(addr), size_));
}

void GuestMemory::check_user(GuestAddr addr, std::uint64_t len, const char* what) const {
  if (addr.value < layout::kUserLow)
    throw GuestMemoryError(
        fmt::format("guest address {} ({}, {} bytes) is below the guest's user memory {:#x}",
                    to_string(addr), what, len, layout::kUserLow));
  check(addr, len, what);
}

void GuestMemory::track_host_writes(bool on) {
  tracking_ = on;
  host_dirty_.assign((size_ / kPage + 63) / 64, 0);
}

void GuestMemory::mark(std::uint64_t addr, std::uint64_t len) {
  if (!tracking_ || len == 0) return;
  for (std::uint64_t p = addr / kPage; p <= (addr + len - 1) / kPage; ++p)
    host_dirty_[p / 64] |= 1ull << (p % 64);
}

std::vector<std::uint64_t> GuestMemory::take_host_dirty() {
  std::vector<std::uint64_t> pages;
  for (std::size_t w = 0; w < host_dirty_.size(); ++w) {
    for (std::uint64_t bits = std::exchange(host_dirty_[w], 0); bits; bits &= bits - 1)
      pages.push_back(w * 64 + static_cast<std::uint64_t>(__builtin_ctzll(bits)));
  }
  return pages;
}

std::span<std::uint8_t> GuestMemory::span(GuestAddr addr, std::uint64_t len, const char* what) {
  check(addr, len, what);
  mark(addr.value, len);
  return {base_ + addr.value, static_cast<std::size_t>(len)};
}

std::span<const std::uint8_t> GuestMemory::span(GuestAddr addr, std::uint64_t len,
                                                const char* what) const {
  check(addr, len, what);
  return {base_ + addr.value, static_cast<std::size_t>(len)};
}

void GuestMemory::read(GuestAddr addr, std::span<std::uint8_t> out) const {
  auto src = span(addr, out.size(), "read");
  if (!out.empty()) std::memcpy(out.data(), src.data(), out.size());
}

void GuestMemory::write(GuestAddr addr, std::span<const std::uint8_t> in) {
  auto dst = span(addr, in.size(), "write");
  if (!in.empty()) std::memcpy(dst.data(), in.data(), in.size());
}

void GuestMemory::fill(GuestAddr addr, std::uint8_t byte, std::uint64_t len) {
  auto dst = span(addr, len, "fill");
  if (len) std::memset(dst.data(), byte, len);
}

std::string GuestMemory::read_cstr(GuestAddr addr, std::size_t max) const {
  check(addr, 1, "string read");
  std::size_t avail = std::min<std::size_t>(max, size_ - addr.value);
  const auto* p = base_ + addr.value;
  const void* nul = std::memchr(p, 0, avail);
  std::size_t n = nul ? static_cast<std::size_t>(static_cast<const std::uint8_t*>(nul) - p) : avail;
  return std::string(reinterpret_cast<const char*>(p), n);  // Safe: bytes viewed as chars.
}

void GuestMemory::discard(GuestAddr addr, std::uint64_t len) {
  check(addr, len, "discard");
  if (addr.value % kPage || len % kPage)
    throw std::invalid_argument(
        fmt::format("discard of {} bytes at {} is not page-aligned", len, to_string(addr)));
  if (len == 0) return;
  if (shared_fd_ >= 0) {
    if (initial_fd_ >= 0)
      copy_initial(addr.value, len);
    else
      punch(addr.value, len);
    return;
  }
  // Safe: a range inside our own private mapping; MADV_DONTNEED on MAP_PRIVATE restores the
  // file's (or zero) contents.
  if (madvise(base_ + addr.value, len, MADV_DONTNEED) != 0)
    throw std::system_error(errno, std::generic_category(), "madvise(MADV_DONTNEED) on guest RAM");
}

void GuestMemory::zero(GuestAddr addr, std::uint64_t len) {
  if (shared_fd_ >= 0) {
    check(addr, len, "zero");
    if (addr.value % kPage || len % kPage)
      throw std::invalid_argument(
          fmt::format("zero of {} bytes at {} is not page-aligned", len, to_string(addr)));
    mark(addr.value, len);  // the next reset brings back what the snapshot had there
    punch(addr.value, len);
    return;
  }
  discard(addr, len);
  if (addr.value >= file_bytes_) return;  // anonymous RAM: discarded pages read as zero
  static const std::uint8_t kZero[kPage] = {};
  const std::uint64_t end =
      std::min<std::uint64_t>(addr.value + len, (file_bytes_ + kPage - 1) / kPage * kPage);
  // The file's holes read as zero once discarded: only its data extents are looked at (a snapshot
  // file holds the pages that were not zero), never every page of a range the guest names.
  for (std::uint64_t off = addr.value; off < end;) {
    const auto [from, to] = next_data(off, end);
    if (from >= end) break;
    for (std::uint64_t p = from & ~(kPage - 1); p < to; p += kPage) {
      // Only pages with old bytes are written (and so become private copies).
      if (std::memcmp(base_ + p, kZero, kPage) != 0)
        std::memset(span(GuestAddr(p), kPage, "zero").data(), 0, kPage);
    }
    off = to;
  }
}

}  // namespace unifn::vmm
