// Writes the seed corpora of fuzz_guest, fuzz_files and fuzz_http into DIR/guest, DIR/files and
// DIR/http: well-formed programs of a guest that answers, uses its heap, writes its console and
// misbehaves; real images, kernels, snapshot state files and device and vCPU states; requests for
// every route. Usage: make_fuzz_seeds DIR FUNCTIONS_DIR KERNELS_DIR
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <unifn/abi.h>

#include "vmm/devices/virtio/virtio_mmio.h"
#include "test/fuzz/fuzz_boot.h"
#include "test/fuzz/fuzz_machine.h"
#include "test/fuzz/guest_format.h"
#include "test/kernels/kernel_images.h"
#include "vmm/platform/kvm/kvm_cpu_state.h"
#include "vmm/snapshot/snapshot_store.h"

using namespace unifn;
using namespace unifn::fuzz;
namespace fs = std::filesystem;
namespace g = unifn::fuzz::guest;
using Bytes = std::vector<std::uint8_t>;

namespace {

Bytes read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write(const fs::path& p, const Bytes& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()),
            static_cast<std::streamsize>(b.size()));  // Safe: bytes as chars.
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

Bytes tagged(std::uint8_t tag, const Bytes& b) {
  Bytes out{tag};
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

Bytes text(std::string_view s) { return Bytes(s.begin(), s.end()); }

template <typename T>
Bytes pod(const T& v) {
  Bytes b(sizeof v);
  std::memcpy(b.data(), &v, sizeof v);
  return b;
}

// ---- guest programs ----

// The boot info of the VM the guest fuzzer runs (same image, same sizes), for absolute addresses.
unifn_boot_info guest_boot_info(const std::shared_ptr<const vmm::FunctionImage>& image) {
  FuzzPlatform platform;
  platform.program = [](FuzzMachine& m, std::chrono::steady_clock::time_point) {
    return polite_guest(m);
  };
  vmm::FunctionVmConfig cfg;
  cfg.memory_bytes = g::kRam;
  cfg.max_body_bytes = g::kMaxBody;
  cfg.platform = &platform;
  auto vm = vmm::FunctionVm::boot(image, cfg, {});
  return vm->machine().memory().read_obj<unifn_boot_info>(vmm::GuestAddr(vmm::layout::kBootInfo));
}

void guest_seeds(const fs::path& dir, const std::shared_ptr<const vmm::FunctionImage>& image) {
  using g::code;
  const auto bi = guest_boot_info(image);
  // Where the boot's NEXT_REQUEST struct sits (fuzz_guest.cpp: one page below the stack top),
  // as a code: RAM end minus the request area and a page.
  const std::uint32_t next =
      code(g::kRamEnd, static_cast<std::uint32_t>(bi.ram_bytes - bi.stack_top + 4096));
  const std::uint32_t ct = code(g::kScratch, 0), body = code(g::kScratch, 0x100),
                      arg = code(g::kScratch, 0x800);
  auto start = [](std::uint8_t flags) {
    g::Writer w;
    w.put(flags);
    return w;
  };
  auto answer = [&](g::Writer& w, std::string_view type, std::string_view b,
                    std::uint32_t status = 200) {
    w.poke(ct, text(type)).poke(body, text(b));
    w.hypercall(UNIFN_HC_RESPOND, arg,
                {body, code(g::kSmall, static_cast<std::uint32_t>(b.size())), status,
                 static_cast<std::uint32_t>(type.size()), ct, 0, next});
  };
  const std::uint32_t minus1 = code(g::kNegative, 1);
  auto mmap = [&](g::Writer& w, std::uint32_t len) {
    w.syscall(g::sys(9), {0, len, 3, 0x22, minus1, 0});
  };

  {  // three answered requests
    auto w = start(0);
    for (int i = 0; i < 3; ++i) answer(w, "text/plain", "hello");
    write(dir / "answer", w.out);
  }
  {  // the body sizes: 4 KiB, none, too large
    for (std::uint8_t b = 1; b < 4; ++b) {
      auto w = start(static_cast<std::uint8_t>(b << g::kBodyShift));
      answer(w, "application/json", "{}");
      answer(w, "application/json", "{}");
      write(dir / ("body-" + std::to_string(b)), w.out);
    }
  }
  {  // malloc's calls: brk, mmap, munmap, mremap
    auto w = start(0);
    w.syscall(g::sys(12), {code(g::kSmall, 0)});
    w.syscall(g::sys(12), {code(g::kBrk, 0x21000)});
    mmap(w, code(g::kRaw, 0x10000));
    w.syscall(g::sys(11), {code(g::kLastMmap, 0), code(g::kRaw, 0x10000)});
    mmap(w, code(g::kSmall, 0x3000));
    mmap(w, code(g::kSmall, 0x3000));
    mmap(w, code(g::kSmall, 0x3000));
    w.syscall(g::sys(11), {code(g::kLastMmap, 0x3000), code(g::kSmall, 0x3000)});
    mmap(w, code(g::kPages, 0x100));
    w.syscall(g::sys(25),
              {code(g::kLastMmap, 0), code(g::kSmall, 0x1000), code(g::kSmall, 0x2000), 1});
    w.syscall(g::sys(12), {code(g::kHeap, 0x1000)});
    mmap(w, code(g::kSmall, 0x2000));
    answer(w, "text/plain", "heap");
    mmap(w, code(g::kPages, 0x40));
    answer(w, "text/plain", "heap");
    write(dir / "heap", w.out);
    // The same with snapshot, restore and a reset per request.
    w.out[0] = g::kFlagSnapshot;
    write(dir / "heap-snapshot", w.out);
  }
  {  // console: CONSOLE_WRITE, LOG, write, writev, with bytes a terminal would obey
    auto w = start(0);
    const std::string line = "line one\n\x1b[31mred\x1b[0m \r\x07\xc2\x9b\xff tail\n";
    w.poke(body, text(line));
    w.hypercall(UNIFN_HC_CONSOLE_WRITE, arg,
                {body, code(g::kSmall, static_cast<std::uint32_t>(line.size()))});
    w.hypercall(UNIFN_HC_LOG, arg, {body, code(g::kSmall, 8), 2});
    w.syscall(g::sys(1), {1, body, code(g::kSmall, static_cast<std::uint32_t>(line.size()))});
    std::uint64_t iov[4] = {bi.heap_start + 0x100, 5, bi.heap_start + 0x100, line.size()};
    Bytes iovb(sizeof iov);
    std::memcpy(iovb.data(), iov, sizeof iov);
    w.poke(code(g::kScratch, 0x400), iovb);
    w.syscall(g::sys(20), {2, code(g::kScratch, 0x400), 2});
    w.syscall(g::sys(20), {7, code(g::kScratch, 0x400), 2});  // a descriptor that is not a console
    answer(w, "text/plain", "console");
    write(dir / "console", w.out);
  }
  {  // the other system calls musl makes, and one the VMM does not serve
    auto w = start(0);
    w.syscall(g::sys(228), {0, code(g::kScratch, 0x200)});
    w.syscall(g::sys(228), {2, code(g::kScratch, 0x200)});
    w.syscall(g::sys(228), {minus1, code(g::kScratch, 0x200)});
    w.syscall(g::sys(96), {code(g::kScratch, 0x200), 0});
    w.syscall(g::sys(318), {code(g::kScratch, 0x200), 64, 0});
    w.syscall(g::sys(158), {0x1002, code(g::kScratch, 0x300)});
    w.syscall(g::sys(158), {0x1003, code(g::kScratch, 0x300)});
    w.syscall(g::sys(0), {0, code(g::kScratch, 0x200), 10});
    w.syscall(g::sys(16), {1, 0x5401, 0});
    w.syscall(g::sys(218), {code(g::kScratch, 0x200)});
    w.syscall(g::sys(435), {0});
    w.syscall(0x8000 | 500, {0});
    answer(w, "text/plain", "misc");
    write(dir / "syscalls", w.out);
  }
  {  // endings: exit_group, EXIT, ABORT, an exception, a scripted stop
    auto w = start(0);
    w.syscall(g::sys(231), {3});
    write(dir / "exit-group", w.out);
    auto x = start(0);
    answer(x, "text/plain", "before exit");
    x.hypercall(UNIFN_HC_EXIT, arg, {7});
    write(dir / "exit", x.out);
    auto a = start(0);
    a.poke(body, text("out of luck"));
    a.hypercall(UNIFN_HC_ABORT, arg, {body, code(g::kSmall, 11)});
    write(dir / "abort", a.out);
    auto e = start(0);
    e.exception(14, 7, 6, code(g::kImage, 0x1234), code(g::kSmall, 0x10));
    write(dir / "page-fault", e.out);
    auto s = start(0);
    s.stop(0);
    write(dir / "timeout", s.out);
  }
  {  // hypercalls used wrongly: unknown number, a read, a short access, NEXT_REQUEST inside a
     // request, RESPOND with a bad status, a long content type, control bytes, a struct outside RAM
    auto w = start(0);
    w.hypercall(9, arg, {});
    write(dir / "hc-unknown", w.out);
    auto r = start(0);
    r.hypercall(UNIFN_HC_CONSOLE_WRITE, arg, {body, 4}, g::kAccessRead);
    write(dir / "hc-read", r.out);
    auto sh = start(0);
    sh.hypercall(UNIFN_HC_CONSOLE_WRITE, arg, {body, 4}, g::kAccessShort);
    write(dir / "hc-short", sh.out);
    auto n = start(0);
    n.hypercall(UNIFN_HC_NEXT_REQUEST, arg, {code(g::kIoBuf, 0), code(g::kSmall, 0x1000)});
    write(dir / "hc-next-in-request", n.out);
    auto st = start(0);
    answer(st, "text/plain", "bad status", 99);
    write(dir / "hc-status", st.out);
    auto c = start(0);
    answer(c, "text/plain\r\nX-Injected: 1", "split");
    write(dir / "hc-crlf-type", c.out);
    auto o = start(0);
    o.hypercall(UNIFN_HC_RESPOND, code(g::kRamEnd, 8), {});
    write(dir / "hc-outside", o.out);
    auto nx = start(0);
    nx.hypercall(UNIFN_HC_RESPOND, arg, {body, 2, 200, 0, 0, 0, 0});  // answers, does not park
    nx.hypercall(UNIFN_HC_NEXT_REQUEST, code(g::kScratch, 0xA00),
                 {code(g::kIoBuf, 0), code(g::kSmall, 0x8000)});
    answer(nx, "text/plain", "again");
    write(dir / "respond-then-next", nx.out);
  }
  {  // the virtio-accel device: registers read, the driver's set-up, a notification of an empty
     // ring
    auto w = start(g::kFlagAccel);
    namespace reg = vmm::virtio::reg;
    namespace st = vmm::virtio::status;
    const std::uint32_t win = 0x80000000u;
    for (std::uint64_t r : {reg::kMagic, reg::kVersion, reg::kDeviceId, reg::kVendorId,
                            reg::kDeviceFeatures, reg::kQueueNumMax, std::uint64_t{0x100}})
      w.mmio(2, false, win | static_cast<std::uint32_t>(r), 0);
    auto wr = [&](std::uint64_t r, std::uint32_t v) {
      w.mmio(2, true, win | static_cast<std::uint32_t>(r), v);
    };
    const auto ring = static_cast<std::uint32_t>(bi.heap_start + 0x10000);
    wr(reg::kStatus, 0);
    wr(reg::kStatus, st::kAcknowledge | st::kDriver);
    wr(reg::kDriverFeaturesSel, 1);
    wr(reg::kDriverFeatures, 1);
    wr(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk);
    wr(reg::kQueueSel, 0);
    wr(reg::kQueueNum, 64);
    wr(reg::kQueueDescLow, ring);
    wr(reg::kQueueDriverLow, ring + 0x1000);
    wr(reg::kQueueDeviceLow, ring + 0x2000);
    wr(reg::kQueueReady, 1);
    wr(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk | st::kDriverOk);
    wr(reg::kQueueNotify, 0);
    w.mmio(2, false, win | static_cast<std::uint32_t>(reg::kInterruptStatus), 0);
    w.mmio(0, true, win | static_cast<std::uint32_t>(reg::kQueueNotify), 0);  // a 1-byte write
    answer(w, "text/plain", "accel");
    write(dir / "accel", w.out);
  }
  {  // ports that are not hypercalls
    auto w = start(0);
    w.port(0x3F8, 0, true, 'x');
    w.port(0x80, 2, false, 0);
    w.port(static_cast<std::uint16_t>(UNIFN_HC_BASE + 0xFF), 2, true, 0);
    answer(w, "text/plain", "ports");
    write(dir / "ports", w.out);
  }
}

// ---- files ----

void snapshot_seeds(const fs::path& dir, const std::shared_ptr<const vmm::FunctionImage>& image) {
  std::string tmpl = (fs::temp_directory_path() / "unifn-fuzz-seeds-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  const fs::path tmp = tmpl;
  for (bool accel : {false, true}) {
    FuzzPlatform platform;
    platform.program = [](FuzzMachine& m, std::chrono::steady_clock::time_point) {
      return polite_guest(m);
    };
    auto vm = vmm::FunctionVm::boot(image, files_config(platform, accel), {});
    const vmm::SnapshotStore store(tmp);
    const fs::path ram_tmp = tmp / "ram.tmp";
    vmm::Fd fd(::open(ram_tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    auto snap = vm->snapshot(std::move(fd));
    store.save(kSnapshotKey, *snap, ram_tmp);
    const Bytes state = read_all(store.state_path(kSnapshotKey));
    const std::uint8_t accel_bit = accel ? 0x10 : 0;
    write(dir / (accel ? "state-file-accel" : "state-file"), tagged(4 | accel_bit, state));
    // The payload alone: after magic (8), format (4), the key (8 + its length), length and sum
    // (16).
    const std::size_t header = 8 + 4 + 8 + std::strlen(kSnapshotKey) + 16;
    write(dir / (accel ? "state-payload-accel" : "state-payload"),
          tagged(3 | accel_bit, Bytes(state.begin() + header, state.end())));
    if (accel) {
      const auto& dev = snap->devices.at(0);
      Bytes seed = pod(static_cast<std::uint16_t>(dev.size()));
      seed.insert(seed.end(), dev.begin(), dev.end());
      write(dir / "device-booted", tagged(5, seed));
    }
  }
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

void device_seeds(const fs::path& dir) {
  accel::AccelDevice dev(reference_backend(), device_options());
  auto seed = [&](const std::string& name, const Bytes& ram) {
    const auto s = dev.save();
    Bytes b = pod(static_cast<std::uint16_t>(s.size()));
    b.insert(b.end(), s.begin(), s.end());
    b.insert(b.end(), ram.begin(), ram.end());
    write(dir / name, tagged(5, b));
  };
  seed("device-fresh", {});
  vmm::GuestMemory mem(1u << 20);
  namespace reg = vmm::virtio::reg;
  namespace st = vmm::virtio::status;
  dev.write32(mem, reg::kStatus, st::kAcknowledge | st::kDriver);
  dev.write32(mem, reg::kDriverFeaturesSel, 1);
  dev.write32(mem, reg::kDriverFeatures, 1);
  dev.write32(mem, reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk);
  dev.write32(mem, reg::kQueueNum, 64);
  dev.write32(mem, reg::kQueueDescLow,
              0x11000);  // in the guest's user memory, from layout::kUserLow
  dev.write32(mem, reg::kQueueDriverLow, 0x12000);
  dev.write32(mem, reg::kQueueDeviceLow, 0x13000);
  dev.write32(mem, reg::kQueueReady, 1);
  dev.write32(mem, reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk | st::kDriverOk);
  seed("device-ready", Bytes(0x14000, 0));
}

void cpu_seeds(const fs::path& dir) {
  vmm::KvmCpuState s;
  s.xsave.assign(4096, 0);
  s.regs.rip = 0x101000;
  s.regs.rsp = 0x7e0000;
  s.sregs.cr0 = 0x80050033;
  s.msrs = {kvm_msr_entry{0xC0000080, 0, 0xD01}, kvm_msr_entry{0x10, 0, 12345}};
  write(dir / "cpu-state", tagged(6, s.to_bytes()));
}

void file_seeds(const fs::path& dir, const fs::path& functions, const fs::path& kernels,
                const std::shared_ptr<const vmm::FunctionImage>& image) {
  namespace k = unifn::test;
  namespace kc = unifn::test::code;
  for (const char* f : {"echo.elf", "hello.elf"})
    if (fs::exists(functions / f))
      write(dir / (std::string("image-") + f), tagged(0, read_all(functions / f)));
  write(dir / "kernel-multiboot", tagged(1, read_all(kernels / "multiboot.elf")));
  write(dir / "kernel-pvh", tagged(2, read_all(kernels / "pvh.elf")));
  write(dir / "kernel-aout",
        tagged(1, k::aout_kernel(kc::cat({kc::serial_char('k'), kc::kHlt}), 0x100000, 0, 0x1000)));
  const Bytes pvh_code = kc::cat({kc::serial_char('p'), kc::kHlt});
  write(dir / "kernel-pvh32", tagged(2, k::elf32(0x100000, {{0x100000, 0x100000, pvh_code, 0x2000}},
                                                 {{"Xen", 18, k::pvh_note_desc32(0x100000)}})));
  snapshot_seeds(dir, image);
  device_seeds(dir);
  cpu_seeds(dir);
}

// ---- http ----

void http_seeds(const fs::path& dir) {
  auto req = [](std::string_view s) { return text(s); };
  const std::vector<std::pair<std::string, std::string>> seeds = {
      {"invoke",
       "POST /function/echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: "
       "5\r\n\r\nhello"},
      {"invoke-continue",
       "POST /function/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: "
       "4\r\n\r\nbody"},
      {"invoke-chunked",
       "POST /function/echo/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
       "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
      {"invoke-call-id",
       "POST /function/echo HTTP/1.1\r\nX-Call-Id: my-id.1~:x\r\nContent-Length: 0\r\n\r\n"},
      {"invoke-bad-call-id",
       "POST /function/echo HTTP/1.1\r\nX-Call-Id: a b\r\nContent-Length: 0\r\n\r\n"},
      {"mirror",
       "POST /function/mirror HTTP/1.1\r\nContent-Length: 25\r\n\r\n201|text/x||hello mirror!"},
      {"mirror-error", "POST /function/mirror HTTP/1.1\r\nContent-Length: 13\r\n\r\n4||no luck|x!"},
      {"hostile-results",
       "POST /function/badtype HTTP/1.1\r\n\r\nPOST /function/lftype HTTP/1.1\r\n\r\nPOST "
       "/function/errcrlf HTTP/1.1\r\n\r\n"
       "POST /function/status999 HTTP/1.1\r\n\r\nPOST /function/nocontent HTTP/1.1\r\n\r\nHEAD "
       "/function/echo HTTP/1.1\r\n\r\n"},
      {"async",
       "POST /async-function/mirror HTTP/1.1\r\nX-Call-Id: c1\r\nContent-Length: "
       "20\r\n\r\n200|text/plain||body"
       "GET /v1/calls/c1 HTTP/1.1\r\n\r\nGET /v1/calls/c1?result=raw HTTP/1.1\r\n\r\nHEAD "
       "/v1/calls/c1 HTTP/1.1\r\n\r\n"},
      {"async-callback",
       "POST /async-function/echo HTTP/1.1\r\nX-Callback-Url: "
       "http://127.0.0.1:1/cb\r\nContent-Length: 2\r\n\r\nhi"},
      {"async-bad-callback",
       "POST /async-function/echo HTTP/1.1\r\nX-Callback-Url: ftp://x/\r\nContent-Length: "
       "0\r\n\r\n"},
      {"async-unknown", "POST /async-function/nope HTTP/1.1\r\nContent-Length: 0\r\n\r\n"},
      {"system",
       "GET /system/functions HTTP/1.1\r\n\r\nGET /system/function/echo HTTP/1.1\r\n\r\nGET "
       "/system/function/nope HTTP/1.1\r\n\r\n"
       "GET /system/info HTTP/1.1\r\n\r\nHEAD /system/info HTTP/1.1\r\n\r\n"},
      {"health-metrics",
       "GET /healthz HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\nHEAD /metrics HTTP/1.0\r\n\r\n"},
      {"wrong-methods",
       "GET /function/echo HTTP/1.1\r\n\r\nDELETE /system/functions HTTP/1.1\r\n\r\nPUT /healthz "
       "HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
       "OPTIONS /v1/calls/x HTTP/1.1\r\n\r\nPOST /metrics HTTP/1.1\r\n\r\n"},
      {"unknown-routes",
       "GET / HTTP/1.1\r\n\r\nGET /function/ HTTP/1.1\r\n\r\nGET /function/a/b HTTP/1.1\r\n\r\nGET "
       "* HTTP/1.1\r\n\r\n"},
      {"http10",
       "POST /function/echo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc"},
      {"too-large", "POST /function/echo HTTP/1.1\r\nContent-Length: 99999999\r\n\r\nxx"},
      {"bad", "GET /healthz HTTP/9.9\r\n\r\n"},
  };
  for (const auto& [name, wire] : seeds) {
    write(dir / name, tagged(0, req(wire)));
    write(dir / (name + "-server"), tagged(7, req(wire)));
  }
  // A header past the server's 16 KiB limit.
  write(dir / "huge-header-server",
        tagged(7, req("GET /healthz HTTP/1.1\r\nX-Big: " + std::string(17000, 'a') + "\r\n\r\n")));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s DIR FUNCTIONS_DIR KERNELS_DIR\n", argv[0]);
    return 2;
  }
  try {
    const fs::path dir = argv[1], functions = argv[2], kernels = argv[3];
    for (const char* d : {"guest", "files", "http"}) fs::create_directories(dir / d);
    const auto image = vmm::FunctionImage::load((functions / "echo.elf").string());
    guest_seeds(dir / "guest", image);
    file_seeds(dir / "files", functions, kernels, image);
    http_seeds(dir / "http");
    write(dir / "stamp", {});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
