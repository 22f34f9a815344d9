// A platform whose machines run a tiny guest written in C++ instead of guest code: it speaks the
// unifn hypercall ABI (NEXT_REQUEST, CONSOLE_WRITE, RESPOND) through the real port bus, so that
// FunctionVm::boot, snapshot, restore, reset and invoke all run unchanged on memory-only machines.
// Instances boot in microseconds and answer deterministically, on any host (no KVM, no ptrace):
// for pool tests, stress tests and ThreadSanitizer.
//
// The guest answers its request body:
//   "print TEXT"   writes TEXT and a newline to the console (CONSOLE_WRITE), then answers "printed"
//   "sleep N"      works for N microseconds (stops at the deadline or a cancel), then answers
//   "slept" "throw"        its vCPU path throws std::system_error (as a platform error would)
//   "throw-int"    its vCPU path throws an int (not a std::exception)
//   "crash"        faults
//   "count"        answers how many calls this instance's RAM has seen since its snapshot
//   anything else  is echoed
#pragma once

#include <elf.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <unifn/abi.h>

#include "vmm/machine.h"
#include "vmm/platform/platform.h"

namespace unifn::test {

// Where the emulated guest keeps its state: in the image's one segment, so it is part of the RAM
// that snapshots, restores and resets handle.
namespace emulated {
inline constexpr std::uint64_t kBase = 0x100000;  // the image's segment
inline constexpr std::uint64_t kSegmentBytes = 0x20000;
inline constexpr std::uint64_t kNext = kBase + 0x8000;  // struct unifn_hc_next
inline constexpr std::uint64_t kRespond = kBase + 0x8200;
inline constexpr std::uint64_t kConsole = kBase + 0x8400;  // struct unifn_hc_buf
inline constexpr std::uint64_t kCounter = kBase + 0x8600;
inline constexpr std::uint64_t kContentType = kBase + 0x8800;
inline constexpr std::uint64_t kText = kBase + 0x9000;     // console text, 4 KiB
inline constexpr std::uint64_t kRequest = kBase + 0xA000;  // the request body, 16 KiB
inline constexpr std::uint64_t kRequestCap = 0x4000;
inline constexpr std::uint64_t kResponse = kBase + 0xE000;  // the response body, 16 KiB
}  // namespace emulated

class EmulatedPlatform;

class EmulatedGuest final : public vmm::Machine {
 public:
  EmulatedGuest(std::unique_ptr<vmm::GuestMemory> memory, EmulatedPlatform& platform)
      : Machine(std::move(memory)), platform_(platform) {}

  vmm::PlatformKind platform() const override { return vmm::PlatformKind::Fake; }
  vmm::Stop run(std::chrono::steady_clock::time_point deadline) override;
  std::string where() override { return "the emulated guest"; }
  void start_user(std::uint64_t rip, std::uint64_t rsp, std::uint64_t arg) override {
    regs_ = {};
    regs_.rip = rip;
    regs_.rsp = rsp;
    regs_.rdi = arg;
  }
  vmm::GuestRegs regs() override { return regs_; }
  void set_regs(const vmm::GuestRegs& regs) override { regs_ = regs; }
  vmm::CpuState capture() override {
    vmm::CpuState s{vmm::PlatformKind::Fake, std::vector<std::uint8_t>(sizeof regs_)};
    std::memcpy(s.bytes.data(), &regs_, sizeof regs_);
    return s;
  }
  void apply(const vmm::CpuState& state) override;
  std::vector<std::uint64_t> take_dirty_pages() override {
    return {};
  }  // it writes RAM only as the host
  std::uint64_t tsc_khz() override { return 1000000; }
  std::uint64_t guest_tsc_now() override {
    return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }

 protected:
  void kick() override {}  // run() polls cancelled()

 private:
  // The guest's `outl gpa, UNIFN_HC_BASE + nr`.
  std::optional<vmm::Stop> hypercall(std::uint32_t nr, std::uint64_t gpa) {
    auto arg = static_cast<std::uint32_t>(gpa);
    std::uint8_t data[4];
    std::memcpy(data, &arg, 4);
    vmm::PortAccess a{static_cast<std::uint16_t>(UNIFN_HC_BASE + nr), true,
                      std::span<std::uint8_t>(data)};
    return port_access(a);
  }
  vmm::Stop respond(const std::string& body) {
    using namespace emulated;
    auto& mem = memory();
    static const std::string type = "text/plain";
    mem.write(vmm::GuestAddr(kContentType),
              std::span(reinterpret_cast<const std::uint8_t*>(type.data()), type.size()));
    mem.write(vmm::GuestAddr(kResponse),
              std::span(reinterpret_cast<const std::uint8_t*>(body.data()), body.size()));
    unifn_hc_respond r{};
    r.status = 200;
    r.content_type_len = static_cast<std::uint32_t>(type.size());
    r.content_type = kContentType;
    r.body = kResponse;
    r.body_len = body.size();
    r.next = kNext;
    mem.write_obj(vmm::GuestAddr(kRespond), r);
    if (auto stop = hypercall(UNIFN_HC_RESPOND, kRespond)) return *stop;
    return vmm::Stop{vmm::StopKind::Fault, 0, "RESPOND did not park the emulated guest"};
  }

  EmulatedPlatform& platform_;
  vmm::GuestRegs regs_;
};

class EmulatedPlatform final : public vmm::Platform {
 public:
  vmm::PlatformKind kind() const override { return vmm::PlatformKind::Fake; }
  std::unique_ptr<vmm::Machine> create(const vmm::MachineSpec& spec) override {
    if (fail_creates.load())
      throw std::runtime_error("the emulated platform was told to refuse new machines");
    ++created;
    return std::make_unique<EmulatedGuest>(vmm::private_ram(spec), *this);
  }
  std::string isolation() const override {
    return "nothing runs: the emulated guest is host code, for tests";
  }

  std::atomic<int> created{0};            // machines made: boots and restores
  std::atomic<bool> fail_creates{false};  // create() throws (a restore fails)
  std::atomic<int> fail_applies{0};       // the next N loads of a vCPU state (restore, reset) throw
};

inline void EmulatedGuest::apply(const vmm::CpuState& state) {
  for (int n = platform_.fail_applies.load(); n > 0;)
    if (platform_.fail_applies.compare_exchange_weak(n, n - 1))
      throw std::runtime_error("the emulated platform was told to fail loading a vCPU state");
  if (state.platform != vmm::PlatformKind::Fake || state.bytes.size() != sizeof regs_)
    throw std::invalid_argument("not an emulated vCPU state");
  std::memcpy(&regs_, state.bytes.data(), sizeof regs_);
}

inline vmm::Stop EmulatedGuest::run(std::chrono::steady_clock::time_point deadline) {
  using namespace emulated;
  count_exit();
  if (cancelled()) return {vmm::StopKind::Cancelled, 0, "the call was cancelled"};
  auto& mem = memory();
  if (regs_.r15 == 0) {  // booting: initialised at once, wait for the first request
    regs_.r15 = 1;
    unifn_hc_next next{};
    next.buf = kRequest;
    next.buf_cap = kRequestCap;
    mem.write_obj(vmm::GuestAddr(kNext), next);
    if (auto stop = hypercall(UNIFN_HC_NEXT_REQUEST, kNext)) return *stop;
    return {vmm::StopKind::Fault, 0, "NEXT_REQUEST did not park the emulated guest"};
  }
  auto next = mem.read_obj<unifn_hc_next>(vmm::GuestAddr(kNext));
  std::string body(next.len, '\0');
  mem.read(vmm::GuestAddr(next.buf),
           std::span(reinterpret_cast<std::uint8_t*>(body.data()), body.size()));
  auto count = mem.read_obj<std::uint64_t>(vmm::GuestAddr(kCounter)) + 1;
  mem.write_obj(vmm::GuestAddr(kCounter), count);
  if (body.rfind("print ", 0) == 0) {
    std::string text = body.substr(6, 4000) + "\n";
    mem.write(vmm::GuestAddr(kText),
              std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
    mem.write_obj(vmm::GuestAddr(kConsole), unifn_hc_buf{kText, text.size()});
    if (auto stop = hypercall(UNIFN_HC_CONSOLE_WRITE, kConsole)) return *stop;
    return respond("printed");
  }
  if (body.rfind("sleep ", 0) == 0) {
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::microseconds(std::stoul(body.substr(6)));
    while (std::chrono::steady_clock::now() < until) {
      if (cancelled()) return {vmm::StopKind::Cancelled, 0, "the call was cancelled"};
      if (std::chrono::steady_clock::now() >= deadline)
        return {vmm::StopKind::Timeout, 0, "the emulated guest ran past its deadline"};
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    return respond("slept");
  }
  if (body == "throw")
    throw std::system_error(EIO, std::generic_category(), "the emulated vCPU failed");
  if (body == "throw-int") throw 42;
  if (body == "crash") return {vmm::StopKind::Fault, 0, "the emulated guest crashed on request"};
  if (body == "count") return respond(std::to_string(count));
  return respond(body);
}

// A minimal unifn image for the emulated guest (one read-write segment at 1 MiB, the ABI note),
// written to path; returns path.
inline std::string write_emulated_image(const std::string& path) {
  struct Note {
    Elf64_Nhdr h;
    char name[8];
    std::uint32_t version;
  };
  constexpr std::uint64_t kPhoff = sizeof(Elf64_Ehdr);
  constexpr std::uint64_t kNoteOff = kPhoff + 2 * sizeof(Elf64_Phdr);
  constexpr std::uint64_t kFileBytes = kNoteOff + sizeof(Note);
  std::vector<std::uint8_t> file(kFileBytes);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_entry = emulated::kBase + 0x100;
  eh.e_phoff = kPhoff;
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = 2;
  std::memcpy(file.data(), &eh, sizeof eh);
  Elf64_Phdr load{};
  load.p_type = PT_LOAD;
  load.p_flags = PF_R | PF_W;
  load.p_offset = 0;
  load.p_vaddr = load.p_paddr = emulated::kBase;
  load.p_filesz = kFileBytes;
  load.p_memsz = emulated::kSegmentBytes;
  load.p_align = 0x1000;
  Elf64_Phdr note{};
  note.p_type = PT_NOTE;
  note.p_offset = kNoteOff;
  note.p_filesz = note.p_memsz = sizeof(Note);
  note.p_align = 4;
  std::memcpy(file.data() + kPhoff, &load, sizeof load);
  std::memcpy(file.data() + kPhoff + sizeof load, &note, sizeof note);
  Note n{};
  n.h.n_namesz = sizeof UNIFN_NOTE_NAME;  // "unifn" and its NUL
  n.h.n_descsz = 4;
  n.h.n_type = UNIFN_NOTE_TYPE_ABI;
  std::memcpy(n.name, UNIFN_NOTE_NAME, sizeof UNIFN_NOTE_NAME);
  n.version = UNIFN_ABI_VERSION;
  std::memcpy(file.data() + kNoteOff, &n, sizeof n);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(file.data()), static_cast<std::streamsize>(file.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
  return path;
}

// The image in the temporary directory, written once per process and removed at its exit.
inline const std::string& emulated_image() {
  struct File {
    std::string path;
    ~File() { ::unlink(path.c_str()); }
  };
  static const File file{
      write_emulated_image("/tmp/unifn-emulated-guest-" + std::to_string(::getpid()) + ".elf")};
  return file.path;
}

}  // namespace unifn::test
