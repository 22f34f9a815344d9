// The guest's CPUID as data (no /dev/kvm): KVM's paravirtual leaves and the features a unifn
// guest must not see are filtered out, and CR4 turns on SMEP, SMAP and UMIP only where offered.
#include <catch2/catch.hpp>

#include <linux/kvm.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vmm/x86/cpu.h"

using namespace unifn::vmm;

namespace {

kvm_cpuid_entry2 leaf(std::uint32_t function, std::uint32_t index, std::uint32_t eax,
                      std::uint32_t ebx, std::uint32_t ecx, std::uint32_t edx,
                      bool indexed = false) {
  kvm_cpuid_entry2 e{};
  e.function = function;
  e.index = index;
  e.flags = indexed ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
  e.eax = eax, e.ebx = ebx, e.ecx = ecx, e.edx = edx;
  return e;
}

std::optional<kvm_cpuid_entry2> find(const std::vector<kvm_cpuid_entry2>& t, std::uint32_t function,
                                     std::uint32_t index = 0) {
  for (const auto& e : t)
    if (e.function == function && e.index == index) return e;
  return std::nullopt;
}

constexpr std::uint32_t kAll = 0xFFFFFFFF;

// What KVM_GET_SUPPORTED_CPUID answers on a host that offers everything: every bit set.
std::vector<kvm_cpuid_entry2> everything() {
  return {leaf(0, 0, 0x1c, 0x68747541, 0x444d4163, 0x69746e65),
          leaf(1, 0, 0x00a10f11, 0x01020800, kAll, kAll),
          leaf(7, 0, 1, kAll, kAll, kAll, true),
          leaf(7, 1, 0, kAll, kAll, kAll, true),
          leaf(0xA, 0, 0x07300805, 0, 0, 0x603),
          leaf(0xD, 0, 0xe7, 0x980, 0x980, 0, true),
          leaf(0x12, 0, 1, 0, 0, 0, true),
          leaf(0x14, 0, 1, 0, 0, 0, true),
          leaf(0x40000000, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d),  // "KVMKVMKVM"
          leaf(0x40000001, 0, 0x01007efb, 0, 0, 0),
          leaf(0x40000100, 0, 0x40000101, 0x4b4d564b, 0x564b4d56, 0x4d),
          leaf(0x80000000, 0, 0x80000022, 0, 0, 0),
          leaf(0x80000001, 0, 0, 0, kAll, kAll),
          leaf(0x8000000A, 0, 1, 0x8000, 0, 0x1ff),
          leaf(0x80000022, 0, 1, 0, 0, 0)};
}

}  // namespace

TEST_CASE("the guest's CPUID has no hypervisor leaves, no PMU, SGX, PT or SVM leaves") {
  const auto t = filter_cpuid(everything());
  for (const auto& e : t) {
    INFO(std::hex << e.function);
    CHECK_FALSE((e.function >= 0x40000000 && e.function <= 0x4FFFFFFF));
    CHECK(e.function != 0xA);
    CHECK(e.function != 0x12);
    CHECK(e.function != 0x14);
    CHECK(e.function != 0x8000000A);
    CHECK(e.function != 0x80000022);
  }
  // The rest is kept.
  CHECK(find(t, 0).has_value());
  CHECK(find(t, 0xD).has_value());
  CHECK(find(t, 7, 1).has_value());
  CHECK(find(t, 0x80000000).has_value());
}

TEST_CASE(
    "the guest's CPUID hides VMX, SVM, the APIC, MONITOR, machine checks, SGX and PT, says it is a "
    "VM") {
  const auto t = filter_cpuid(everything());
  const auto one = *find(t, 1);
  CHECK((one.ecx & (1u << 5)) == 0);   // VMX
  CHECK((one.ecx & (1u << 6)) == 0);   // SMX
  CHECK((one.ecx & (1u << 3)) == 0);   // MONITOR
  CHECK((one.ecx & (1u << 15)) == 0);  // PDCM
  CHECK((one.ecx & (1u << 21)) == 0);  // x2APIC
  CHECK((one.ecx & (1u << 24)) == 0);  // TSC deadline
  CHECK((one.ecx & (1u << 31)) != 0);  // hypervisor
  CHECK((one.ecx & (1u << 0)) != 0);   // SSE3 and the rest stay
  CHECK((one.ecx & (1u << 26)) != 0);  // XSAVE
  CHECK((one.edx & (1u << 9)) == 0);   // APIC
  CHECK((one.edx & (1u << 7)) == 0);   // MCE
  CHECK((one.edx & (1u << 14)) == 0);  // MCA
  CHECK((one.edx & (1u << 25)) != 0);  // SSE
  const auto seven = *find(t, 7, 0);
  CHECK((seven.ebx & (1u << 2)) == 0);   // SGX
  CHECK((seven.ebx & (1u << 25)) == 0);  // PT
  CHECK((seven.ebx & (1u << 7)) != 0);   // SMEP stays: CR4 needs it
  CHECK((seven.ebx & (1u << 20)) != 0);  // SMAP stays
  CHECK((seven.ecx & (1u << 2)) != 0);   // UMIP stays
  CHECK((seven.ecx & (1u << 30)) == 0);  // SGX launch control
  CHECK(find(t, 7, 1)->ebx == kAll);     // subleaf 1 untouched: the rule is for subleaf 0
  const auto ext = *find(t, 0x80000001);
  CHECK((ext.ecx & (1u << 2)) == 0);   // SVM
  CHECK((ext.ecx & (1u << 23)) == 0);  // perfctr_core
  CHECK((ext.ecx & (1u << 0)) != 0);   // LAHF/SAHF stays
}

TEST_CASE("the hidden-CPUID tables say why, and a filtered table is filtered again unchanged") {
  for (const auto& h : cpuid_hidden_leaves()) {
    CHECK(h.first <= h.last);
    CHECK(std::string(h.what).size() > 5);
  }
  for (const auto& b : cpuid_hidden_bits()) {
    CHECK(b.bits != 0);
    CHECK_FALSE(std::string(b.what).empty());
    CHECK((b.function != 1 || b.reg != CpuidReg::Ecx ||
           (b.bits & (1u << 31)) == 0));  // never the hypervisor bit
  }
  const auto once = filter_cpuid(everything());
  const auto twice = filter_cpuid(once);
  REQUIRE(once.size() == twice.size());
  for (std::size_t i = 0; i < once.size(); ++i) {
    CHECK(once[i].function == twice[i].function);
    CHECK(once[i].eax == twice[i].eax);
    CHECK(once[i].ebx == twice[i].ebx);
    CHECK(once[i].ecx == twice[i].ecx);
    CHECK(once[i].edx == twice[i].edx);
  }
}

TEST_CASE("CR4 turns SMEP, SMAP and UMIP on exactly where the CPUID offers them") {
  const std::uint64_t base = cr4::kPAE | cr4::kOSFXSR | cr4::kOSXMMEXCPT;
  CHECK(ring3_cr4({}) == base);
  CHECK(ring3_cr4(filter_cpuid(everything())) == (base | cr4::kSMEP | cr4::kSMAP | cr4::kUMIP));
  // This PVM host's leaf 7: TSC_ADJUST, CLFLUSHOPT, CLWB; UMIP and GFNI. No SMEP, no SMAP.
  CHECK(ring3_cr4({leaf(7, 0, 1, 0x01800002, 0x104, 0x20000000, true)}) == (base | cr4::kUMIP));
  CHECK(ring3_cr4({leaf(7, 0, 1, 1u << 7, 0, 0, true)}) == (base | cr4::kSMEP));
  CHECK(ring3_cr4({leaf(7, 0, 1, 1u << 20, 0, 0, true)}) == (base | cr4::kSMAP));
  CHECK(ring3_cr4({leaf(7, 1, 1, kAll, kAll, kAll, true)}) ==
        base);  // subleaf 1 says nothing about them
  CHECK(cr4::kSMEP == (1u << 20));
  CHECK(cr4::kSMAP == (1u << 21));
  CHECK(cr4::kUMIP == (1u << 11));
}
