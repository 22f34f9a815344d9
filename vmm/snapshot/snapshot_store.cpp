// Writing and checking snapshot files: magic, format version, size cap, key and checksums.
#include "snapshot/snapshot_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <system_error>
#include <unifn/abi.h>

#include "snapshot/byte_io.h"

namespace unifn::vmm {

namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kPage = 4096;

struct Fnv {
  std::uint64_t h = 0xcbf29ce484222325ull;
  void add(std::span<const std::uint8_t> b) {
    for (auto c : b) h = (h ^ c) * 0x100000001b3ull;
  }
  void add_u64(std::uint64_t v) { add(std::span(reinterpret_cast<const std::uint8_t*>(&v), 8)); }  // Safe: integer as bytes.
};

// Checksum of a RAM file: its non-zero pages with their offsets, read through SEEK_DATA so
// that holes cost nothing.
std::uint64_t ram_checksum(int fd, std::uint64_t size) {
  Fnv f;
  std::vector<std::uint8_t> page(kPage);
  static const std::uint8_t zero[kPage] = {};
  off_t pos = 0;
  while (static_cast<std::uint64_t>(pos) < size) {
    off_t data = lseek(fd, pos, SEEK_DATA);
    if (data < 0) break;  // ENXIO: only holes remain
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0) hole = static_cast<off_t>(size);
    for (off_t off = data & ~static_cast<off_t>(kPage - 1); off < hole; off += kPage) {
      ssize_t n = pread(fd, page.data(), kPage, off);
      if (n <= 0) break;
      if (static_cast<std::size_t>(n) < kPage) std::memset(page.data() + n, 0, kPage - static_cast<std::size_t>(n));
      if (std::memcmp(page.data(), zero, kPage) == 0) continue;
      f.add_u64(static_cast<std::uint64_t>(off));
      f.add(page);
    }
    pos = hole;
  }
  return f.h;
}

void write_all(int fd, std::span<const std::uint8_t> b, const fs::path& path) {
  while (!b.empty()) {
    ssize_t n = ::write(fd, b.data(), b.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), fmt::format("writing {}", path.string()));
    }
    b = b.subspan(static_cast<std::size_t>(n));
  }
}

void sync_and_rename(int fd, const fs::path& tmp, const fs::path& final_path) {
  if (::fsync(fd) != 0) throw std::system_error(errno, std::generic_category(), fmt::format("fsync of {}", tmp.string()));
  fs::rename(tmp, final_path);
}

}  // namespace

SnapshotStore::SnapshotStore(fs::path dir) : dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_))
    throw std::runtime_error(fmt::format("cannot use {} as the snapshot directory: {}", dir_.string(), ec.message()));
}

std::string SnapshotStore::key(const FunctionImage& image, const FunctionVmConfig& cfg) {
  Fnv a, b;
  b.h = 0x84222325cbf29ce4ull;  // a second, differently seeded hash: 128 bits of key
  for (Fnv* f : {&a, &b}) {
    f->add(image.bytes);
    f->add_u64(UNIFN_ABI_VERSION);
    f->add_u64(kSnapshotFormat);
    f->add_u64(cfg.memory_bytes);
    f->add_u64(cfg.max_body_bytes);
    const auto platform = to_string(cfg.platform_or_default().kind());  // each platform has its own CPU state
    f->add_u64(platform.size());
    f->add(std::span(reinterpret_cast<const std::uint8_t*>(platform.data()), platform.size()));  // Safe: chars as bytes.
    f->add_u64(cfg.devices.size());
    f->add_u64(cfg.device_key.size());  // lengths keep ("ab", "") apart from ("a", "b")
    f->add(std::span(reinterpret_cast<const std::uint8_t*>(cfg.device_key.data()), cfg.device_key.size()));  // Safe: chars as bytes.
    f->add_u64(cfg.cmdline.size());
    f->add(std::span(reinterpret_cast<const std::uint8_t*>(cfg.cmdline.data()), cfg.cmdline.size()));  // Safe: chars as bytes.
    for (const auto& [k, v] : cfg.env) {
      std::string kv = k + "=" + v + '\0';
      f->add(std::span(reinterpret_cast<const std::uint8_t*>(kv.data()), kv.size()));  // Safe: chars as bytes.
    }
  }
  return fmt::format("{:016x}{:016x}", a.h, b.h);
}

void SnapshotStore::save(const std::string& key, Snapshot& snap, const fs::path& ram_tmp) const {
  sync_and_rename(snap.ram.get(), ram_tmp, ram_path(key));
  ByteWriter p;
  p.pod(snap.layout);
  p.u64(snap.heap.start);
  p.u64(snap.heap.end);
  p.u64(snap.heap.brk);
  p.u64(snap.heap.mmap_low);
  p.u64(snap.heap.free.size());
  for (auto [start, len] : snap.heap.free) {
    p.u64(start);
    p.u64(len);
  }
  p.u64(snap.parked_at);
  p.u64(static_cast<std::uint64_t>(snap.cpu.platform));
  p.blob(snap.cpu.bytes);
  p.u64(snap.devices.size());
  for (const auto& d : snap.devices) p.blob(d);
  p.u64(ram_checksum(snap.ram.get(), snap.layout.ram));
  auto payload = p.take();

  Fnv sum;
  sum.add(payload);
  ByteWriter h;
  h.pod(kSnapshotMagic);
  h.pod(kSnapshotFormat);
  h.str(key);
  h.u64(payload.size());
  h.u64(sum.h);
  auto header = h.take();

  fs::path tmp = state_path(key).string() + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), fmt::format("creating {}", tmp.string()));
  Fd owned(fd);
  write_all(fd, header, tmp);
  write_all(fd, payload, tmp);
  sync_and_rename(fd, tmp, state_path(key));
}

std::shared_ptr<Snapshot> SnapshotStore::load(const std::string& key, std::size_t device_count) const {
  const auto state = state_path(key);
  std::error_code ec;
  auto size = fs::file_size(state, ec);
  if (ec) throw std::runtime_error(fmt::format("{}: {}", state.string(), ec.message()));
  if (size > kMaxStateBytes) throw std::runtime_error(fmt::format("{}: {} bytes is over the {} byte cap", state.string(), size, kMaxStateBytes));
  std::vector<std::uint8_t> bytes(size);
  {
    Fd fd(::open(state.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd || ::pread(fd.get(), bytes.data(), size, 0) != static_cast<ssize_t>(size))
      throw std::runtime_error(fmt::format("{}: cannot be read", state.string()));
  }
  ByteReader h(bytes);
  auto magic = h.pod<std::array<char, 8>>();
  if (std::memcmp(magic.data(), kSnapshotMagic, 8) != 0) throw std::runtime_error(fmt::format("{}: not a unifn snapshot (bad magic)", state.string()));
  auto format = h.pod<std::uint32_t>();
  if (format != kSnapshotFormat)
    throw std::runtime_error(fmt::format("{}: snapshot format {} (this unifnd reads format {})", state.string(), format, kSnapshotFormat));
  if (h.str(64) != key) throw std::runtime_error(fmt::format("{}: belongs to another image or settings", state.string()));
  auto payload_len = h.u64();
  auto expected = h.u64();
  auto payload = h.blob_rest(payload_len);
  Fnv sum;
  sum.add(payload);
  if (sum.h != expected) throw std::runtime_error(fmt::format("{}: checksum mismatch (corrupted)", state.string()));

  auto snap = std::make_shared<Snapshot>();
  ByteReader p(payload);
  snap->layout = p.pod<GuestLayout>();
  snap->heap.start = p.u64();
  snap->heap.end = p.u64();
  snap->heap.brk = p.u64();
  snap->heap.mmap_low = p.u64();
  auto nfree = p.u64();
  if (nfree > (1u << 20)) throw std::runtime_error(fmt::format("{}: implausible heap state", state.string()));
  for (std::uint64_t i = 0; i < nfree; ++i) {
    auto start = p.u64();
    snap->heap.free[start] = p.u64();
  }
  snap->parked_at = p.u64();
  const auto platform = p.u64();
  if (platform > static_cast<std::uint64_t>(PlatformKind::Fake))
    throw std::runtime_error(fmt::format("{}: names an unknown platform {}", state.string(), platform));
  snap->cpu.platform = static_cast<PlatformKind>(platform);
  snap->cpu.bytes = p.blob(1 << 20);
  auto ndev = p.u64();
  if (ndev != device_count)
    throw std::runtime_error(fmt::format("{}: has {} devices, the function has {}", state.string(), ndev, device_count));
  for (std::uint64_t i = 0; i < ndev; ++i) snap->devices.push_back(p.blob(1 << 20));
  auto ram_sum = p.u64();
  p.expect_end(state.c_str());
  if (snap->layout.ram == 0 || snap->layout.ram > UNIFN_RAM_MAX_BYTES || snap->layout.ram % kPage)
    throw std::runtime_error(fmt::format("{}: implausible RAM size {}", state.string(), snap->layout.ram));

  const auto ram = ram_path(key);
  snap->ram = Fd(::open(ram.c_str(), O_RDONLY | O_CLOEXEC));
  if (!snap->ram) throw std::runtime_error(fmt::format("{}: cannot be opened", ram.string()));
  struct stat st {};
  if (::fstat(snap->ram.get(), &st) != 0 || static_cast<std::uint64_t>(st.st_size) != snap->layout.ram)
    throw std::runtime_error(fmt::format("{}: is {} bytes, the snapshot's RAM is {}", ram.string(), st.st_size, snap->layout.ram));
  if (ram_checksum(snap->ram.get(), snap->layout.ram) != ram_sum)
    throw std::runtime_error(fmt::format("{}: checksum mismatch (corrupted or from another snapshot)", ram.string()));
  return snap;
}

SnapshotStore::Result SnapshotStore::get_or_build(std::shared_ptr<const FunctionImage> image, const FunctionVmConfig& cfg,
                                                  Console::Sink console) {
  Result r;
  const std::string k = r.key = key(*image, cfg);
  if (fs::exists(state_path(k))) {
    try {
      r.snapshot = load(k, cfg.devices.size());
      r.from_disk = true;
      return r;
    } catch (const std::exception& e) {
      // Never trusted: set aside for inspection and rebuilt.
      auto stamp = std::chrono::system_clock::now().time_since_epoch().count();
      std::error_code ec;
      fs::rename(state_path(k), state_path(k).string() + fmt::format(".bad-{}", stamp), ec);
      fs::rename(ram_path(k), ram_path(k).string() + fmt::format(".bad-{}", stamp), ec);
      r.warning = fmt::format("snapshot set aside and rebuilt: {}", e.what());
    }
  }
  auto vm = FunctionVm::boot(image, cfg, console);
  fs::path tmp = ram_path(k).string() + fmt::format(".tmp{}", ::getpid());
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), fmt::format("creating {}", tmp.string()));
  auto snap = vm->snapshot(Fd(fd));
  save(k, *snap, tmp);
  r.snapshot = std::move(snap);
  r.booted = std::move(vm);
  return r;
}

namespace {

bool is_key(std::string_view stem) {
  return stem.size() == 32 && stem.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

}  // namespace

SnapshotStore::Collected SnapshotStore::collect_garbage(const std::set<std::string>& keep) const {
  Collected c;
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    const auto dot = name.find('.');
    if (dot == std::string::npos || !is_key(std::string_view(name).substr(0, dot))) continue;
    const std::string key = name.substr(0, dot), suffix = name.substr(dot);
    bool stale = false;
    if (suffix == ".ram" || suffix == ".state") {
      stale = !keep.contains(key);
    } else if (suffix.starts_with(".ram.tmp") || suffix == ".state.tmp") {
      std::error_code tec;
      auto age = now - fs::last_write_time(entry.path(), tec);
      stale = !tec && age > std::chrono::hours(1);
    }
    if (!stale) continue;
    struct stat st {};
    const bool sized = ::stat(entry.path().c_str(), &st) == 0;
    std::error_code rec;
    if (fs::remove(entry.path(), rec)) {
      ++c.files;
      if (sized) c.bytes += static_cast<std::uintmax_t>(st.st_blocks) * 512;
    }
  }
  return c;
}

}  // namespace unifn::vmm
