/* console_flood: a guest that floods its console and hands the VMM addresses below its user
 * memory (0x10000, where the VMM keeps its own pages), by the request body:
 *   "flood"     64 MiB through raw write(2) calls of 1 MiB each; answers "calls=N bytes=B max=M"
 *   "forever"   prints lines until the call's deadline stops it (never answers)
 *   "putflood"  one CONSOLE_WRITE of 8 MiB, then answers "put"
 *   "low"       system calls whose pointers lie below 0x10000; answers one "name=ret" line each
 *   "low-hc"    a CONSOLE_WRITE whose argument struct lies at 0x1000 (the call fails)
 *   "low-park"  a RESPOND that parks at 0x2000 for the next request (the call fails)
 *   else        answers "ok" */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unifn/abi.h>
#include <unifn/function.h>

/* Linux x86-64 numbers, spelled out: the point is the raw call, not what musl makes of it. */
#define NR_write 1
#define NR_writev 20
#define NR_gettimeofday 96
#define NR_arch_prctl 158
#define NR_clock_gettime 228
#define NR_getrandom 318
#define ARCH_GET_FS 0x1003

static long raw3(long nr, long a, long b, long c) {
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a), "S"(b), "d"(c)
                   : "rcx", "r11", "memory");
  return ret;
}

static void hypercall(unsigned nr, uint32_t gpa) {
  __asm__ volatile("outl %0, %1" : : "a"(gpa), "Nd"((uint16_t)(UNIFN_HC_BASE + nr)) : "memory");
}

static int is(const unifn_request* req, const char* word) {
  return req->len == strlen(word) && memcmp(req->body, word, req->len) == 0;
}

enum { kChunk = 1 << 20, kFlood = 64 << 20 };

static int console_flood(const unifn_request* req, unifn_response* res) {
  if (is(req, "flood")) {
    char* buf = malloc(kChunk);
    if (!buf) return 500;
    for (int i = 0; i < kChunk; i++)
      buf[i] = (i % 1000 == 999) ? '\n' : 'f'; /* lines of 1000 bytes */
    long calls = 0, total = 0, max = 0;
    while (total < kFlood) {
      long n = raw3(NR_write, 1, (long)buf, kChunk);
      if (n <= 0) break;
      calls++;
      total += n;
      if (n > max) max = n;
    }
    unifn_printf(res, "calls=%ld bytes=%ld max=%ld\n", calls, total, max);
    return 200;
  }
  if (is(req, "forever")) {
    for (unsigned long i = 0;; i++) printf("line %lu of a console that never stops\n", i);
  }
  if (is(req, "putflood")) {
    static struct unifn_hc_buf b;
    b.len = 8 << 20;
    char* data = malloc(b.len);
    if (!data) return 500;
    memset(data, 'p', b.len);
    b.data = (uint64_t)(uintptr_t)data;
    hypercall(UNIFN_HC_CONSOLE_WRITE, (uint32_t)(uintptr_t)&b);
    unifn_printf(res, "put\n");
    return 200;
  }
  if (is(req, "low")) {
    unifn_printf(res, "write=%ld\n", raw3(NR_write, 1, 0x1000, 16));
    unifn_printf(res, "writev=%ld\n", raw3(NR_writev, 1, 0x2000, 1));
    unifn_printf(res, "clock_gettime=%ld\n", raw3(NR_clock_gettime, 0, 0x3000, 0));
    unifn_printf(res, "gettimeofday=%ld\n", raw3(NR_gettimeofday, 0x4000, 0, 0));
    unifn_printf(res, "getrandom=%ld\n", raw3(NR_getrandom, 0x5000, 64, 0));
    unifn_printf(res, "arch_prctl=%ld\n", raw3(NR_arch_prctl, ARCH_GET_FS, 0x8000, 0));
    return 200;
  }
  if (is(req, "low-hc")) {
    hypercall(UNIFN_HC_CONSOLE_WRITE, 0x1000);
    unifn_printf(res, "the VMM read a CONSOLE_WRITE argument at 0x1000\n");
    return 200;
  }
  if (is(req, "low-park")) {
    static struct unifn_hc_respond r;
    static const char type[] = "text/plain";
    r.status = 200;
    r.content_type = (uint64_t)(uintptr_t)type;
    r.content_type_len = sizeof type - 1;
    r.body = (uint64_t)(uintptr_t)type;
    r.body_len = 4;
    r.next = 0x2000;
    hypercall(UNIFN_HC_RESPOND, (uint32_t)(uintptr_t)&r);
    for (;;) hypercall(UNIFN_HC_EXIT, 0x2000); /* never reached: the VMM refused the park */
  }
  unifn_printf(res, "ok\n");
  return 200;
}

UNIFN_FUNCTION(console_flood)
