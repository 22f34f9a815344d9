// KVM system, VM and vCPU wrappers: every ioctl checked, every failure a sentence.
#include "vmm/platform/kvm/kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <stdexcept>
#include <system_error>

#include "vmm/memory/guest_memory.h"

namespace unifn::vmm {

namespace {

// linux/kvm.h declares its flexible arrays with __DECLARE_FLEX_ARRAY, which under C++ changes
// sizeof() and the arrays' offsets, and so the ioctl numbers. These use the C layout: an 8-byte
// header (4 for the MSR index list) followed by the entries.
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, std::uint8_t[8]);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, std::uint8_t[8]);
constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, std::uint8_t[4]);
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, std::uint8_t[8]);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, std::uint8_t[8]);
constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, std::uint8_t[4096]);
constexpr unsigned long kSetXsave = _IOW(KVMIO, 0xa5, std::uint8_t[4096]);
constexpr std::size_t kHeader = 8;

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}
}  // namespace

Kvm::Kvm() {
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    throw std::system_error(
        errno, std::generic_category(),
        "cannot open /dev/kvm (is KVM available and are you in the kvm group?)");
  fd_ = Fd(fd);
  // Safe: KVM system ioctls on our own /dev/kvm fd with no pointer arguments.
  if (::ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
    throw std::runtime_error("/dev/kvm has an unsupported API version");
  vcpu_mmap_size_ = ::ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0);  // Safe: no argument.
  if (vcpu_mmap_size_ <= 0) fail("KVM_GET_VCPU_MMAP_SIZE");

  constexpr int kMaxCpuid = 256;
  std::vector<std::uint32_t> buf(kHeader / 4 + kMaxCpuid * sizeof(kvm_cpuid_entry2) / 4);
  buf[0] = kMaxCpuid;
  // Safe: the buffer holds the 8-byte header and kMaxCpuid entries, as nent tells KVM.
  if (::ioctl(fd, kGetSupportedCpuid, buf.data()) < 0) fail("KVM_GET_SUPPORTED_CPUID");
  cpuid_.resize(buf[0]);
  std::memcpy(cpuid_.data(), buf.data() + kHeader / 4, buf[0] * sizeof(kvm_cpuid_entry2));

  std::uint32_t probe[2] = {0, 0};
  // Safe: with a count of 0 KVM only writes the count back (and fails with E2BIG).
  ::ioctl(fd, kGetMsrIndexList, probe);
  std::vector<std::uint32_t> list(1 + probe[0]);
  list[0] = probe[0];
  // Safe: the buffer holds the count and that many indices.
  if (::ioctl(fd, kGetMsrIndexList, list.data()) < 0) fail("KVM_GET_MSR_INDEX_LIST");
  msrs_.assign(list.begin() + 1, list.begin() + 1 + list[0]);
}

const Kvm& Kvm::instance() {
  static const Kvm kvm;
  return kvm;
}

bool Kvm::has(long cap) const {
  return ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap) > 0;  // Safe: integer argument.
}

Vm::Vm(const Kvm& kvm) : kvm_(&kvm) {
  int fd = -1;
  for (int tries = 0; tries < 100; ++tries) {
    fd = ::ioctl(kvm.fd(), KVM_CREATE_VM, 0);  // Safe: integer argument (default machine type).
    if (fd >= 0 || errno != EINTR) break;
  }
  if (fd < 0) fail("KVM_CREATE_VM");
  fd_ = Fd(fd);
}

void Vm::map_memory(const GuestMemory& mem, bool log_dirty) {
  kvm_userspace_memory_region region{};
  region.slot = 0;
  region.flags = log_dirty ? KVM_MEM_LOG_DIRTY_PAGES : 0;
  if (log_dirty) bitmap_.assign((mem.size() / 4096 + 63) / 64, 0);
  region.guest_phys_addr = 0;
  region.memory_size = mem.size();
  region.userspace_addr = mem.host_base_for_kvm();
  // Safe: the region describes a mapping that GuestMemory keeps alive longer than this VM.
  if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0)
    fail("KVM_SET_USER_MEMORY_REGION");
}

std::vector<std::uint64_t> Vm::take_dirty_log() {
  std::vector<std::uint64_t> pages;
  if (bitmap_.empty()) return pages;
  kvm_dirty_log log{};
  log.slot = 0;
  log.dirty_bitmap = bitmap_.data();
  // Safe: the bitmap holds one bit per page of slot 0, as sized in map_memory.
  if (::ioctl(fd_.get(), KVM_GET_DIRTY_LOG, &log) < 0) fail("KVM_GET_DIRTY_LOG");
  for (std::size_t w = 0; w < bitmap_.size(); ++w)
    for (std::uint64_t bits = bitmap_[w]; bits; bits &= bits - 1)
      pages.push_back(w * 64 + static_cast<std::uint64_t>(__builtin_ctzll(bits)));
  return pages;
}

std::unique_ptr<Vcpu> Vm::create_vcpu(int id) { return std::make_unique<Vcpu>(*this, id); }

Vcpu::Vcpu(const Vm& vm, int id) {
  int fd = ::ioctl(vm.fd(), KVM_CREATE_VCPU, id);  // Safe: integer argument.
  if (fd < 0) fail("KVM_CREATE_VCPU");
  fd_ = Fd(fd);
  mmap_size_ = vm.kvm().vcpu_mmap_size();
  // Safe: the kvm_run area KVM documents for this vCPU fd, at the size KVM reported.
  void* p = ::mmap(nullptr, mmap_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) fail("mmap of the vCPU's kvm_run");
  run_ = static_cast<kvm_run*>(p);
}

Vcpu::~Vcpu() {
  if (run_) ::munmap(run_, mmap_size_);
}

bool Vcpu::enter() {
  // Safe: KVM_RUN takes no argument; results land in the kvm_run mapping.
  if (::ioctl(fd_.get(), KVM_RUN, 0) == 0) return true;
  if (errno == EINTR || errno == EAGAIN) return false;
  fail("KVM_RUN");
}

void Vcpu::ioctl_or_throw(unsigned long req, void* arg, const char* what) const {
  // Safe: each caller passes the struct type that `req` documents.
  if (::ioctl(fd_.get(), req, arg) < 0) fail(what);
}

kvm_regs Vcpu::regs() const {
  kvm_regs r{};
  ioctl_or_throw(KVM_GET_REGS, &r, "KVM_GET_REGS");
  return r;
}
void Vcpu::set_regs(const kvm_regs& r) {
  ioctl_or_throw(KVM_SET_REGS, const_cast<kvm_regs*>(&r), "KVM_SET_REGS");
}
kvm_sregs Vcpu::sregs() const {
  kvm_sregs s{};
  ioctl_or_throw(KVM_GET_SREGS, &s, "KVM_GET_SREGS");
  return s;
}
void Vcpu::set_sregs(const kvm_sregs& s) {
  ioctl_or_throw(KVM_SET_SREGS, const_cast<kvm_sregs*>(&s), "KVM_SET_SREGS");
}
kvm_fpu Vcpu::fpu() const {
  kvm_fpu f{};
  ioctl_or_throw(KVM_GET_FPU, &f, "KVM_GET_FPU");
  return f;
}
void Vcpu::set_fpu(const kvm_fpu& f) {
  ioctl_or_throw(KVM_SET_FPU, const_cast<kvm_fpu*>(&f), "KVM_SET_FPU");
}

void Vcpu::set_cpuid(const std::vector<kvm_cpuid_entry2>& entries) {
  std::vector<std::uint32_t> buf(kHeader / 4 + entries.size() * sizeof(kvm_cpuid_entry2) / 4);
  buf[0] = static_cast<std::uint32_t>(entries.size());
  std::memcpy(buf.data() + kHeader / 4, entries.data(), entries.size() * sizeof(kvm_cpuid_entry2));
  ioctl_or_throw(kSetCpuid2, buf.data(), "KVM_SET_CPUID2");
}

std::size_t Vcpu::set_msrs_prefix(const std::vector<kvm_msr_entry>& msrs) {
  std::vector<std::uint64_t> buf(1 + msrs.size() * sizeof(kvm_msr_entry) / 8);
  buf[0] = msrs.size();
  std::memcpy(buf.data() + 1, msrs.data(), msrs.size() * sizeof(kvm_msr_entry));
  // Safe: header + entries as KVM expects; it returns the number of MSRs it set.
  int n = ::ioctl(fd_.get(), kSetMsrs, buf.data());
  if (n < 0) fail("KVM_SET_MSRS");
  return static_cast<std::size_t>(n);
}

void Vcpu::set_msrs(const std::vector<kvm_msr_entry>& msrs) {
  const std::size_t n = set_msrs_prefix(msrs);
  if (n != msrs.size())
    throw std::runtime_error(fmt::format("KVM_SET_MSRS set {} of {} MSRs (MSR {:#x} refused)", n,
                                         msrs.size(), msrs[n].index));
}

std::vector<kvm_msr_entry> Vcpu::msrs(const std::vector<std::uint32_t>& indices) const {
  std::vector<kvm_msr_entry> entries(indices.size());
  for (std::size_t i = 0; i < indices.size(); ++i) entries[i].index = indices[i];
  std::vector<std::uint64_t> buf(1 + entries.size() * sizeof(kvm_msr_entry) / 8);
  buf[0] = entries.size();
  std::memcpy(buf.data() + 1, entries.data(), entries.size() * sizeof(kvm_msr_entry));
  // Safe: header + entries; KVM fills at most that many and returns how many it read.
  int n = ::ioctl(fd_.get(), kGetMsrs, buf.data());
  if (n < 0) fail("KVM_GET_MSRS");
  entries.resize(static_cast<std::size_t>(n));
  std::memcpy(entries.data(), buf.data() + 1, entries.size() * sizeof(kvm_msr_entry));
  return entries;
}

std::vector<std::uint8_t> Vcpu::xsave() const {
  std::vector<std::uint8_t> raw(4096);
  ioctl_or_throw(kGetXsave, raw.data(), "KVM_GET_XSAVE");
  return raw;
}
void Vcpu::set_xsave(const std::vector<std::uint8_t>& raw) {
  if (raw.size() != 4096) throw std::runtime_error("XSAVE state has the wrong size");
  ioctl_or_throw(kSetXsave, const_cast<std::uint8_t*>(raw.data()), "KVM_SET_XSAVE");
}
kvm_xcrs Vcpu::xcrs() const {
  kvm_xcrs x{};
  ioctl_or_throw(KVM_GET_XCRS, &x, "KVM_GET_XCRS");
  return x;
}
void Vcpu::set_xcrs(const kvm_xcrs& x) {
  ioctl_or_throw(KVM_SET_XCRS, const_cast<kvm_xcrs*>(&x), "KVM_SET_XCRS");
}
kvm_vcpu_events Vcpu::events() const {
  kvm_vcpu_events e{};
  ioctl_or_throw(KVM_GET_VCPU_EVENTS, &e, "KVM_GET_VCPU_EVENTS");
  return e;
}
void Vcpu::set_events(const kvm_vcpu_events& e) {
  ioctl_or_throw(KVM_SET_VCPU_EVENTS, const_cast<kvm_vcpu_events*>(&e), "KVM_SET_VCPU_EVENTS");
}
kvm_debugregs Vcpu::debugregs() const {
  kvm_debugregs d{};
  ioctl_or_throw(KVM_GET_DEBUGREGS, &d, "KVM_GET_DEBUGREGS");
  return d;
}
void Vcpu::set_debugregs(const kvm_debugregs& d) {
  ioctl_or_throw(KVM_SET_DEBUGREGS, const_cast<kvm_debugregs*>(&d), "KVM_SET_DEBUGREGS");
}

}  // namespace unifn::vmm
