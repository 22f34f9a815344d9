// Writing and checking snapshot files: magic, format version, size cap, key, tagged sections of
// each piece's state, checksums.
#include "vmm/snapshot/snapshot_store.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <atomic>
#include <cstring>
#include <fmt/format.h>
#include <system_error>
#include <unifn/abi.h>

#include "vmm/snapshot/persist.h"
#include "vmm/x86/layout.h"

namespace unifn::vmm {

namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kPage = 4096;

struct Fnv {
  std::uint64_t h = 0xcbf29ce484222325ull;
  void add(std::span<const std::uint8_t> b) {
    for (auto c : b) h = (h ^ c) * 0x100000001b3ull;
  }
  void add_u64(std::uint64_t v) {
    add(std::span(reinterpret_cast<const std::uint8_t*>(&v), 8));
  }  // Safe: integer as bytes.
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
      if (static_cast<std::size_t>(n) < kPage)
        std::memset(page.data() + n, 0, kPage - static_cast<std::size_t>(n));
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
      throw std::system_error(errno, std::generic_category(),
                              fmt::format("writing {}", path.string()));
    }
    b = b.subspan(static_cast<std::size_t>(n));
  }
}

void sync_and_rename(int fd, const fs::path& tmp, const fs::path& final_path) {
  if (::fsync(fd) != 0)
    throw std::system_error(errno, std::generic_category(),
                            fmt::format("fsync of {}", tmp.string()));
  fs::rename(tmp, final_path);
}

// A temporary name next to final_path, unique in this process: <final>.tmp<pid>.<n> (what
// collect_garbage() recognises as a temporary file). Created with O_EXCL, so a name already
// taken (a leftover, or a file or link someone put there) is passed over, never opened.
std::pair<fs::path, Fd> create_temp(const fs::path& final_path) {
  static std::atomic<std::uint64_t> counter{0};
  for (int tries = 0;; ++tries) {
    fs::path tmp = final_path.string() + fmt::format(".tmp{}.{}", ::getpid(), counter.fetch_add(1));
    try {
      return {tmp, SnapshotStore::create_new(tmp)};
    } catch (const std::system_error& e) {
      if (e.code().value() != EEXIST || tries >= 16) throw;
    }
  }
}

// "uid 1000 (alice)", or just the number when the password database has no name for it.
std::string user(uid_t uid) {
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found)
    return fmt::format("uid {} ({})", uid, found->pw_name);
  return fmt::format("uid {}", uid);
}

std::string mode_text(mode_t m) { return fmt::format("{:04o}", m & 07777); }

// The state file's payload: these sections in this order, each a tag and its piece's bytes, then
// the RAM file's checksum.
enum class Section : std::uint32_t { Layout = 1, Heap, Parked, Cpu, Devices };

std::string_view section_name(std::uint32_t tag) {
  switch (static_cast<Section>(tag)) {
    case Section::Layout:
      return "layout";
    case Section::Heap:
      return "heap";
    case Section::Parked:
      return "parked";
    case Section::Cpu:
      return "cpu";
    case Section::Devices:
      return "devices";
  }
  return "unknown";
}

void section(ByteWriter& w, Section tag, const std::vector<std::uint8_t>& bytes) {
  w.pod(static_cast<std::uint32_t>(tag));
  w.blob(bytes);
}

std::vector<std::uint8_t> section(ByteReader& r, Section expected) {
  const auto tag = r.pod<std::uint32_t>();
  if (tag != static_cast<std::uint32_t>(expected))
    throw std::runtime_error(
        fmt::format("the {} section is missing (found section {} ({}) in its place)",
                    section_name(static_cast<std::uint32_t>(expected)), tag, section_name(tag)));
  return r.blob(kMaxStateBytes);
}

// Where the guest waits for its next request.
struct Parked {
  std::uint64_t at = 0;
  void write(ByteWriter& w) const { w.u64(at); }
  static Parked read(ByteReader& r) { return {r.u64()}; }
};

// Each device's state, in its own encoding (checked by the device, MmioDevice::check).
struct Devices {
  static constexpr std::uint64_t kMax =
      kMmioWindowSize / 0x1000;  // a window each, of 4 KiB at least
  static constexpr std::uint64_t kMaxBytes = 1u << 20;
  std::vector<std::vector<std::uint8_t>> states;
  void write(ByteWriter& w) const {
    w.u64(states.size());
    for (const auto& d : states) w.blob(d);
  }
  static Devices read(ByteReader& r) {
    const auto n = r.u64();
    if (n > kMax)
      throw std::runtime_error(fmt::format("{} device states is over the limit of {}", n, kMax));
    Devices d;
    for (std::uint64_t i = 0; i < n; ++i) d.states.push_back(r.blob(kMaxBytes));
    return d;
  }
};

}  // namespace

Fd SnapshotStore::create_new(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    throw std::system_error(
        err, std::generic_category(),
        err == EEXIST ? fmt::format("creating {}: something already has that name", path.string())
                      : fmt::format("creating {}", path.string()));
  }
  return Fd(fd);
}

std::optional<std::string> SnapshotStore::directory_problem(const fs::path& dir) {
  const uid_t me = ::geteuid();
  const std::string shown = dir.string();
  auto refuse = [&](const std::string& why) {
    return fmt::format("refusing the state directory {}: {}", shown, why);
  };
  std::error_code ec;
  const fs::path abs = fs::absolute(dir, ec).lexically_normal();
  if (ec) return refuse(fmt::format("it cannot be examined ({})", ec.message()));

  // Symbolic links on the way: one owned by another user (root aside) can be pointed elsewhere.
  fs::path walked;
  for (const auto& part : abs) {
    walked /= part;
    struct stat st {};
    if (::lstat(walked.c_str(), &st) != 0) break;  // from here on, nothing exists yet
    if (S_ISLNK(st.st_mode) && st.st_uid != me && st.st_uid != 0)
      return refuse(fmt::format("{} is a symbolic link owned by {}, who can point it elsewhere",
                                walked.string(), user(st.st_uid)));
  }

  // The directory itself, when it exists.
  fs::path real;
  struct stat st {};
  if (::stat(abs.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return refuse("it is not a directory");
    if (st.st_uid != me)
      return refuse(fmt::format(
          "it is owned by {} and unifnd runs as {}; use a directory of ours (mode 0700)",
          user(st.st_uid), user(me)));
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
      const char* who = (st.st_mode & S_IWGRP) && (st.st_mode & S_IWOTH) ? "group and others"
                        : (st.st_mode & S_IWGRP)                         ? "its group"
                                                                         : "others";
      return refuse(fmt::format("its mode {} lets {} write to it (owner {}); chmod 700 {}",
                                mode_text(st.st_mode), who, user(st.st_uid), shown));
    }
    real = fs::canonical(abs, ec);
    if (ec) return refuse(fmt::format("it cannot be examined ({})", ec.message()));
    real = real.parent_path();
  } else if (errno == ENOENT) {
    // Not there yet: judged by the nearest directory it would be created under.
    real = abs.parent_path();
    while (::stat(real.c_str(), &st) != 0 && real != real.parent_path()) real = real.parent_path();
    real = fs::canonical(real, ec);
    if (ec) return refuse(fmt::format("it cannot be examined ({})", ec.message()));
  } else {
    return refuse(fmt::format("it cannot be examined ({})", std::strerror(errno)));
  }

  // The directories it sits in: another user who owns one, or may write one that is not sticky,
  // can rename ours away and put theirs in its place.
  for (fs::path p = real;; p = p.parent_path()) {
    if (::stat(p.c_str(), &st) != 0)
      return refuse(fmt::format("{} cannot be examined ({})", p.string(), std::strerror(errno)));
    if (st.st_uid != me && st.st_uid != 0)
      return refuse(fmt::format("it lies in {}, which is owned by {}, who could replace it",
                                p.string(), user(st.st_uid)));
    if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
      return refuse(fmt::format(
          "it lies in {} (mode {}), which others may write and which is not sticky like /tmp",
          p.string(), mode_text(st.st_mode)));
    if (p == p.parent_path()) break;
  }
  return std::nullopt;
}

SnapshotStore::SnapshotStore(fs::path dir) : dir_(std::move(dir)) {
  // Judged before anything is created in it, then again once it exists (ours, 0700).
  if (auto bad = directory_problem(dir_)) throw std::runtime_error(*bad);
  std::error_code ec;
  if (auto parent = dir_.parent_path(); !parent.empty()) fs::create_directories(parent, ec);
  if (!ec && ::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST)
    ec = std::error_code(errno, std::generic_category());
  if (ec || !fs::is_directory(dir_))
    throw std::runtime_error(fmt::format("cannot use {} as the snapshot directory: {}",
                                         dir_.string(),
                                         ec ? ec.message() : std::string("it is not a directory")));
  if (auto bad = directory_problem(dir_)) throw std::runtime_error(*bad);
}

std::string SnapshotStore::key(const FunctionImage& image, const FunctionVmConfig& cfg) {
  return key(VmIdentity::of(image, cfg));
}

namespace {

// One field of a VmIdentity into the key. Each string and list goes in with its length first, so
// ("ab", "") stays apart from ("a", "b").
void add_field(Fnv& f, std::uint64_t v) { f.add_u64(v); }
void add_field(Fnv& f, const std::string& s) {
  f.add_u64(s.size());
  f.add(std::span(reinterpret_cast<const std::uint8_t*>(s.data()),
                  s.size()));  // Safe: chars as bytes.
}
void add_field(Fnv& f, const ImageContent& image) {
  f.add_u64(image.bytes.size());
  f.add(image.bytes);
}
void add_field(Fnv& f, const VmIdentity::Env& env) {
  f.add_u64(env.size());
  for (const auto& [k, v] : env) add_field(f, k), add_field(f, v);
}

}  // namespace

std::string SnapshotStore::key(const VmIdentity& id) {
  Fnv a, b;
  b.h = 0x84222325cbf29ce4ull;  // a second, differently seeded hash: 128 bits of key
  for (Fnv* f : {&a, &b}) {
    f->add_u64(UNIFN_ABI_VERSION);
    f->add_u64(kSnapshotFormat);
    std::apply([f](const auto&... field) { (add_field(*f, field), ...); }, id.fields());
  }
  return fmt::format("{:016x}{:016x}", a.h, b.h);
}

void SnapshotStore::save(const std::string& key, Snapshot& snap, const fs::path& ram_tmp) const {
  sync_and_rename(snap.ram.get(), ram_tmp, ram_path(key));
  ByteWriter p;
  section(p, Section::Layout, encode(snap.layout));
  section(p, Section::Heap, encode(snap.heap));
  section(p, Section::Parked, encode(Parked{snap.parked_at}));
  section(p, Section::Cpu, encode(snap.cpu));
  section(p, Section::Devices, encode(Devices{snap.devices}));
  p.u64(ram_checksum(snap.ram.get(), snap.layout.ram));  // last: fuzz_files patches it there
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

  auto [tmp, owned] = create_temp(state_path(key));
  try {
    write_all(owned.get(), header, tmp);
    write_all(owned.get(), payload, tmp);
    sync_and_rename(owned.get(), tmp, state_path(key));
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

std::shared_ptr<Snapshot> SnapshotStore::load(const std::string& key, const FunctionVmConfig& cfg,
                                              const FunctionImage* image) const {
  const std::size_t device_count = cfg.devices.size();
  const auto state = state_path(key);
  std::vector<std::uint8_t> bytes;
  {
    // Never through a link: the files are ours, in a directory of ours.
    Fd fd(::open(state.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd)
      throw std::runtime_error(
          fmt::format("{}: cannot be opened ({})", state.string(), std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
      throw std::runtime_error(fmt::format("{}: is not a regular file", state.string()));
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size > kMaxStateBytes)
      throw std::runtime_error(fmt::format("{}: {} bytes is over the {} byte cap", state.string(),
                                           size, kMaxStateBytes));
    bytes.resize(size);
    if (::pread(fd.get(), bytes.data(), size, 0) != static_cast<ssize_t>(size))
      throw std::runtime_error(fmt::format("{}: cannot be read", state.string()));
  }
  ByteReader h(bytes);
  auto magic = h.pod<std::array<char, 8>>();
  if (std::memcmp(magic.data(), kSnapshotMagic, 8) != 0)
    throw std::runtime_error(fmt::format("{}: not a unifn snapshot (bad magic)", state.string()));
  auto format = h.pod<std::uint32_t>();
  if (format != kSnapshotFormat)
    throw std::runtime_error(fmt::format("{}: snapshot format {} (this unifnd reads format {})",
                                         state.string(), format, kSnapshotFormat));
  if (h.str(64) != key)
    throw std::runtime_error(
        fmt::format("{}: belongs to another image or settings", state.string()));
  auto payload_len = h.u64();
  auto expected = h.u64();
  auto payload = h.blob_rest(payload_len);
  Fnv sum;
  sum.add(payload);
  if (sum.h != expected)
    throw std::runtime_error(fmt::format("{}: checksum mismatch (corrupted)", state.string()));

  auto snap = std::make_shared<Snapshot>();
  std::uint64_t ram_sum = 0;
  try {
    ByteReader p(payload);
    snap->layout = decode<GuestLayout>(section(p, Section::Layout), "guest layout");
    snap->heap = decode<HeapState>(section(p, Section::Heap), "heap state");
    snap->parked_at = decode<Parked>(section(p, Section::Parked), "parked address").at;
    snap->cpu = decode<CpuState>(section(p, Section::Cpu), "vCPU state");
    snap->devices = decode<Devices>(section(p, Section::Devices), "device states").states;
    ram_sum = p.u64();
    p.expect_end("snapshot state");
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(fmt::format("{}: {}", state.string(), e.what()));
  }
  if (snap->devices.size() != device_count)
    throw std::runtime_error(fmt::format("{}: has {} devices, the function has {}", state.string(),
                                         snap->devices.size(), device_count));
  if (auto bad = state_problem(*snap, image))
    throw std::runtime_error(fmt::format("{}: {}", state.string(), *bad));
  if (auto bad = cfg.platform_or_default().cpu_state_problem(snap->cpu))
    throw std::runtime_error(fmt::format("{}: {}", state.string(), *bad));
  for (std::size_t i = 0; i < device_count; ++i)
    if (auto bad =
            cfg.devices[i]()->check(snap->devices[i]))  // what FunctionVm::restore will restore
      throw std::runtime_error(
          fmt::format("{}: the state of device {} does not restore: {}", state.string(), i, *bad));

  const auto ram = ram_path(key);
  snap->ram = Fd(::open(ram.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!snap->ram) throw std::runtime_error(fmt::format("{}: cannot be opened", ram.string()));
  struct stat st {};
  if (::fstat(snap->ram.get(), &st) != 0 ||
      static_cast<std::uint64_t>(st.st_size) != snap->layout.ram)
    throw std::runtime_error(fmt::format("{}: is {} bytes, the snapshot's RAM is {}", ram.string(),
                                         st.st_size, snap->layout.ram));
  if (ram_checksum(snap->ram.get(), snap->layout.ram) != ram_sum)
    throw std::runtime_error(
        fmt::format("{}: checksum mismatch (corrupted or from another snapshot)", ram.string()));
  return snap;
}

std::optional<std::string> SnapshotStore::state_problem(const Snapshot& snap,
                                                        const FunctionImage* image) {
  const auto& l = snap.layout;
  const auto& h = snap.heap;
  auto hex = [](std::uint64_t v) { return fmt::format("{:#x}", v); };
  auto aligned = [](std::uint64_t v) { return v % kPage == 0; };
  // The layout: [VMM pages, boot data | image | heap | stack | I/O buffer] = RAM, as
  // FunctionVm::plan lays it out.
  if (l.ram == 0 || l.ram > UNIFN_RAM_MAX_BYTES || !aligned(l.ram))
    return fmt::format("layout: RAM of {} bytes is not a page-aligned size up to {} MiB", l.ram,
                       UNIFN_RAM_MAX_BYTES >> 20);
  if (l.io_size == 0 || !aligned(l.io_size) || l.io_size > l.ram || l.io_buf != l.ram - l.io_size)
    return fmt::format(
        "layout: the I/O buffer at {} of {} bytes is not the page-aligned end of {} bytes of RAM",
        hex(l.io_buf), l.io_size, l.ram);
  if (!aligned(l.stack_top) || l.stack_top > l.io_buf)
    return fmt::format(
        "layout: the stack top {} is not page-aligned at or below the I/O buffer at {}",
        hex(l.stack_top), hex(l.io_buf));
  constexpr std::uint64_t kImageLow = 1ull << 20;  // images load at or above 1 MiB (loader/elf.h)
  if (!aligned(l.heap_start) || !aligned(l.heap_end) || l.heap_start < kImageLow ||
      l.heap_end >= l.stack_top || l.heap_start > l.heap_end ||
      l.heap_end - l.heap_start < (1ull << 20))
    return fmt::format(
        "layout: the heap [{}, {}) is not page-aligned, at least 1 MiB, above 1 MiB and below the "
        "stack top {}",
        hex(l.heap_start), hex(l.heap_end), hex(l.stack_top));
  if (image)
    for (const auto& seg : image->elf.segments)
      if (seg.gpa + seg.mem_size > l.heap_start || seg.gpa + seg.mem_size < seg.gpa)
        return fmt::format("layout: the image's segment at {} ends past the heap's start {}",
                           hex(seg.gpa), hex(l.heap_start));
  if (auto bad = LinuxSyscalls::check(h, l.heap_start, l.heap_end)) return "heap: " + *bad;
  // Where the guest waits: its struct in user memory, whole.
  if (snap.parked_at < layout::kUserLow || snap.parked_at > l.ram - sizeof(unifn_hc_next))
    return fmt::format(
        "parked_at: {} is not a place in guest user memory [{}, {}) with room for its {} byte "
        "request struct",
        hex(snap.parked_at), hex(layout::kUserLow), hex(l.ram), sizeof(unifn_hc_next));
  return std::nullopt;
}

SnapshotStore::Result SnapshotStore::get_or_build(std::shared_ptr<const FunctionImage> image,
                                                  const FunctionVmConfig& cfg,
                                                  Console::Sink console) {
  Result r;
  const std::string k = r.key = key(*image, cfg);
  if (fs::exists(state_path(k))) {
    try {
      r.snapshot = load(k, cfg, image.get());
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
  auto [tmp, fd] = create_temp(ram_path(k));
  std::shared_ptr<Snapshot> snap;
  try {
    snap = vm->snapshot(std::move(fd));
    save(k, *snap, tmp);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);  // gone already when the rename into place happened
    throw;
  }
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
    } else if (suffix.starts_with(".ram.tmp") || suffix.starts_with(".state.tmp")) {
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
