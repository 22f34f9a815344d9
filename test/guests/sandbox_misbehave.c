/* sandbox_misbehave: reaches for memory it has no right to, as its request body says:
 *   "write 0xADDR"        stores a byte at ADDR (outside RAM, the sandbox's system call page, ...)
 *   "rodata"              stores into one of its own `static const` arrays
 *   "text"                stores into its own code
 *   "exec_data"           jumps to a `ret` it wrote into a writable data page
 *   "syscall_at 0xADDR PATH"  calls ADDR (the sandbox's system call page) with creat(PATH) in the
 *                         registers, as if that page could make system calls for it
 *   "loop"                spins forever
 * Anything else (such as "ok") answers "ok". */
#include <stdint.h>
#include <string.h>

#include <unifn/function.h>

static const char table[4096] __attribute__((aligned(4096))) = "a read-only table";
static unsigned char code_buf[4096] __attribute__((aligned(4096)));
static char path[256];

/* Code of its own to write into. */
__attribute__((noinline, used)) void sandbox_code_target(void) { __asm__ volatile(""); }

static int starts(const unifn_request* req, const char* word) {
  size_t n = strlen(word);
  return req->len >= n && memcmp(req->body, word, n) == 0;
}

/* The hex number at body[*at] ("0x..."); *at moves past it. */
static uint64_t hex_at(const unifn_request* req, size_t* at) {
  uint64_t v = 0;
  size_t i = *at;
  if (i + 1 < req->len && req->body[i] == '0' &&
      (req->body[i + 1] == 'x' || req->body[i + 1] == 'X'))
    i += 2;
  for (; i < req->len; ++i) {
    char c = (char)req->body[i];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0) break;
    v = v * 16 + (uint64_t)d;
  }
  *at = i;
  return v;
}

static int sandbox_misbehave(const unifn_request* req, unifn_response* res) {
  if (starts(req, "write ")) {
    size_t at = 6;
    volatile unsigned char* p = (volatile unsigned char*)(uintptr_t)hex_at(req, &at);
    *p = 0x90;
    unifn_printf(res, "wrote %p\n", (void*)p);
    return 200;
  }
  if (starts(req, "rodata")) {
    ((volatile char*)table)[0] = 'X';
    unifn_printf(res, "wrote the table: %c\n", table[0]);
    return 200;
  }
  if (starts(req, "text")) {
    volatile unsigned char* p = (volatile unsigned char*)(uintptr_t)&sandbox_code_target;
    *p = 0xC3;
    unifn_printf(res, "wrote my code\n");
    return 200;
  }
  if (starts(req, "exec_data")) {
    ((volatile unsigned char*)code_buf)[0] = 0xC3; /* ret */
    void (*fn)(void) = (void (*)(void))(uintptr_t)code_buf;
    fn();
    unifn_printf(res, "ran a data page\n");
    return 200;
  }
  if (starts(req, "syscall_at ")) {
    size_t at = 11;
    uint64_t target = hex_at(req, &at);
    while (at < req->len && req->body[at] == ' ') ++at;
    size_t n = req->len - at < sizeof path - 1 ? req->len - at : sizeof path - 1;
    memcpy(path, req->body + at, n);
    path[n] = 0;
    long ret = 85; /* creat */
    register long rsi __asm__("rsi") = 0644;
    /* Past the red zone first: the call pushes a return address. */
    __asm__ volatile("sub $128, %%rsp\n\tcall *%[target]\n\tadd $128, %%rsp"
                     : "+a"(ret), "+r"(rsi)
                     : [target] "r"(target), "D"(path)
                     : "rcx", "rdx", "r8", "r9", "r10", "r11", "memory", "cc");
    unifn_printf(res, "came back: %ld\n", ret);
    return 200;
  }
  if (starts(req, "loop"))
    for (volatile int spin = 0;; spin++) {
    }
  unifn_printf(res, "ok");
  return 200;
}

UNIFN_FUNCTION(sandbox_misbehave)
