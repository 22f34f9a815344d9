/* ring0_reach: tries, one per request, each way a ring-3 guest could reach ring 0 or the VMM's
 * state on KVM. Every attempt must end the call with a CPU exception; the few that are not
 * privileged (CPUID, SGDT without UMIP) answer what they saw.
 *   write:ADDR  read:ADDR  exec:ADDR   (hex) a byte store, a byte load, a jump
 *   wrmsr rdmsr mov_dr7 read_dr7 mov_dr0 mov_cr3 mov_cr4 read_cr0 lgdt lidt ltr iretq_ring0
 * kernel_ds int_gp hlt sysretq invlpg wbinvd out_syscall_port out_exception_port cpuid:LEAF  "eax
 * ebx ecx edx" in hex, and leaf 1's edx sgdt        the GDT's base and limit, when the instruction
 * does not fault The body after the attempt's name is ignored by those that take no argument. */
#include <stdint.h>
#include <string.h>

#include <unifn/function.h>

static uint64_t hex(const char* s, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[i];
    if (c >= '0' && c <= '9')
      v = v * 16 + (uint64_t)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v = v * 16 + (uint64_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v = v * 16 + (uint64_t)(c - 'A' + 10);
    else if (c == 'x' || c == 'X')
      v = 0; /* a 0x prefix */
    else
      break;
  }
  return v;
}

static int is(const unifn_request* req, const char* name) {
  size_t n = strlen(name);
  return req->len >= n && memcmp(req->body, name, n) == 0 && (req->len == n || req->body[n] == ':');
}

static uint64_t arg(const unifn_request* req, const char* name) {
  size_t n = strlen(name) + 1;
  return req->len > n ? hex((const char*)req->body + n, req->len - n) : 0;
}

static void cpuid(uint32_t leaf, uint32_t r[4]) {
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(0));
}

static int ring0_reach(const unifn_request* req, unifn_response* res) {
  if (is(req, "write")) {
    *(volatile uint8_t*)(uintptr_t)arg(req, "write") = 0xCC;
  } else if (is(req, "read")) {
    unifn_printf(res, "read %u\n", *(volatile uint8_t*)(uintptr_t)arg(req, "read"));
  } else if (is(req, "exec")) {
    ((void (*)(void))(uintptr_t)arg(req, "exec"))();
  } else if (is(req, "wrmsr")) {
    /* LSTAR: where `syscall` enters ring 0. */
    __asm__ volatile("wrmsr" : : "c"(0xC0000082u), "a"(0x100000u), "d"(0u));
  } else if (is(req, "rdmsr")) {
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0xC0000082u));
    unifn_printf(res, "lstar %x%08x\n", hi, lo);
  } else if (is(req, "mov_dr7")) {
    __asm__ volatile("mov %0, %%dr7" : : "r"(0x3ull));
  } else if (is(req, "read_dr7")) {
    uint64_t v;
    __asm__ volatile("mov %%dr7, %0" : "=r"(v));
    unifn_printf(res, "dr7 %llx\n", (unsigned long long)v);
  } else if (is(req, "mov_dr0")) {
    __asm__ volatile("mov %0, %%dr0" : : "r"(0x3000ull));
  } else if (is(req, "mov_cr3")) {
    __asm__ volatile("mov %0, %%cr3" : : "r"(0x100000ull));
  } else if (is(req, "mov_cr4")) {
    __asm__ volatile("mov %0, %%cr4" : : "r"(0x620ull));
  } else if (is(req, "read_cr0")) {
    uint64_t v;
    __asm__ volatile("mov %%cr0, %0" : "=r"(v));
    unifn_printf(res, "cr0 %llx\n", (unsigned long long)v);
  } else if (is(req, "lgdt") || is(req, "lidt")) {
    static struct __attribute__((packed)) {
      uint16_t limit;
      uint64_t base;
    } table = {0xFFF, 0x200000};
    if (is(req, "lgdt"))
      __asm__ volatile("lgdt %0" : : "m"(table));
    else
      __asm__ volatile("lidt %0" : : "m"(table));
  } else if (is(req, "ltr")) {
    __asm__ volatile("ltr %w0" : : "r"(0x28));
  } else if (is(req, "iretq_ring0")) {
    /* An interrupt-return frame into the kernel code segment (0x08, RPL 0) at the syscall stub. */
    __asm__ volatile(
        "mov %%rsp, %%rax\n"
        "pushq $0x10\n" /* ss */
        "pushq %%rax\n" /* rsp */
        "pushfq\n"
        "pushq $0x08\n"   /* cs */
        "pushq $0x3000\n" /* rip */
        "iretq\n" ::
            : "rax", "memory");
  } else if (is(req, "kernel_ds")) {
    __asm__ volatile("mov %0, %%ds" : : "r"(0x10) : "memory");
  } else if (is(req, "int_gp")) {
    __asm__ volatile("int $13"); /* the #GP gate has DPL 0 */
  } else if (is(req, "hlt")) {
    __asm__ volatile("hlt");
  } else if (is(req, "sysretq")) {
    __asm__ volatile("lea 1f(%%rip), %%rcx\n mov $0x202, %%r11\n sysretq\n1:" ::
                         : "rcx", "r11", "memory");
  } else if (is(req, "invlpg")) {
    __asm__ volatile("invlpg (%0)" : : "r"(0x3000ull) : "memory");
  } else if (is(req, "wbinvd")) {
    __asm__ volatile("wbinvd");
  } else if (is(req, "out_syscall_port")) {
    __asm__ volatile("out %%al, $0xBF" : : "a"(0));
  } else if (is(req, "out_exception_port")) {
    __asm__ volatile("out %%al, $0xCE" : : "a"(0));
  } else if (is(req, "cpuid")) {
    uint32_t r[4], one[4];
    cpuid((uint32_t)arg(req, "cpuid"), r);
    cpuid(1, one);
    unifn_printf(res, "%08x %08x %08x %08x leaf1.edx %08x\n", r[0], r[1], r[2], r[3], one[3]);
    return 200;
  } else if (is(req, "sgdt")) {
    struct __attribute__((packed)) {
      uint16_t limit;
      uint64_t base;
    } gdtr = {0, 0};
    __asm__ volatile("sgdt %0" : "=m"(gdtr));
    unifn_printf(res, "gdt base %llx limit %x\n", (unsigned long long)gdtr.base, gdtr.limit);
    return 200;
  } else {
    unifn_printf(res, "unknown attempt\n");
    return 400;
  }
  unifn_printf(res, "survived\n");
  return 200;
}

UNIFN_FUNCTION(ring0_reach)
