/* The unifn library OS: process start state for musl, the request loop, SDK helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unifn/abi.h>
#include <unifn/function.h>

#include "hypercall.h"

extern int __libc_start_main(int (*main)(int, char**, char**), int argc, char** argv,
                             void (*init)(void), void (*fini)(void), void (*ldso)(void));

int unifn_handler(const unifn_request* req, unifn_response* res);
__attribute__((weak)) void unifn_init(void) {}

static const struct unifn_boot_info* boot;
static uint64_t tsc_khz;

const struct unifn_boot_info* unifn_get_boot_info(void) { return boot; }

/* argv, envp and auxv as the kernel would lay them out; musl reads them from here. */
enum {
  MAX_ARGS = 32,
  MAX_ENV = 256,
  AT_NULL_ = 0,
  AT_PHDR_ = 3,
  AT_PHENT_ = 4,
  AT_PHNUM_ = 5,
  AT_PAGESZ_ = 6,
  AT_ENTRY_ = 9,
  AT_RANDOM_ = 25
};
static uintptr_t start_vec[1 + MAX_ARGS + 1 + MAX_ENV + 1 + 16];
static char cmdline_copy[4096];

__attribute__((noreturn)) static int runtime_main(int argc, char** argv, char** envp);

__attribute__((noreturn)) void unifn_rt_start(const struct unifn_boot_info* bi) {
  boot = bi;
  tsc_khz = bi->tsc_khz ? bi->tsc_khz : 1000000;
  size_t i = 0;
  int argc = 0;
  start_vec[i++] = 0; /* argc, filled below */
  static char name[] = "unifn";
  start_vec[i++] = (uintptr_t)name;
  argc = 1;
  /* The command line, split on spaces, becomes argv[1..]. Copied: musl may keep pointers. */
  const char* cl = (const char*)(uintptr_t)bi->cmdline;
  size_t n = 0;
  while (cl && cl[n] && n < sizeof cmdline_copy - 1) {
    cmdline_copy[n] = cl[n];
    n++;
  }
  cmdline_copy[n] = 0;
  for (char* p = cmdline_copy; *p && argc < MAX_ARGS;) {
    while (*p == ' ') *p++ = 0;
    if (!*p) break;
    start_vec[i++] = (uintptr_t)p;
    argc++;
    while (*p && *p != ' ') p++;
  }
  start_vec[0] = (uintptr_t)argc;
  start_vec[i++] = 0;
  for (const char* e = (const char*)(uintptr_t)bi->env; e && *e && i < 1 + MAX_ARGS + 1 + MAX_ENV;
       e += strlen(e) + 1)
    start_vec[i++] = (uintptr_t)e;
  start_vec[i++] = 0;
  uintptr_t aux[] = {AT_PHDR_,   bi->phdr, AT_PHENT_,  bi->phent,  AT_PHNUM_, bi->phnum,
                     AT_PAGESZ_, 4096,     AT_RANDOM_, bi->random, AT_NULL_,  0};
  memcpy(&start_vec[i], aux, sizeof aux);
  __libc_start_main(runtime_main, argc, (char**)&start_vec[1], 0, 0, 0);
  for (;;) unifn_hc(UNIFN_HC_EXIT, &(struct unifn_hc_exit){.status = 127});
}

static struct unifn_hc_next next_req __attribute__((aligned(64)));
static struct unifn_hc_respond respond_hc __attribute__((aligned(64)));
static const char default_type[] = "text/plain";

__attribute__((noreturn)) static int runtime_main(int argc, char** argv, char** envp) {
  (void)argc;
  (void)argv;
  (void)envp;
  unifn_init();
  fflush(stdout);
  const uint64_t half = boot->io_buf_size / 2;
  uint8_t* req_buf = (uint8_t*)(uintptr_t)boot->io_buf;
  uint8_t* res_buf = req_buf + half;
  next_req.buf = (uint64_t)(uintptr_t)req_buf;
  next_req.buf_cap = half;
  unifn_hc(UNIFN_HC_NEXT_REQUEST, &next_req); /* initialised: the snapshot is taken here */
  for (;;) {
    uint64_t t0 = unifn_rdtsc();
    unifn_request req = {req_buf, next_req.len, next_req.content_type, next_req.request_id};
    unifn_response res = {0, default_type, NULL, 0, res_buf, half};
    int status = unifn_handler(&req, &res);
    fflush(stdout);
    if (res.status) status = res.status;
    if (status < 100 || status > 599) status = 500;
    const char* ct = res.content_type ? res.content_type : "";
    respond_hc.status = (uint32_t)status;
    respond_hc.content_type = (uint64_t)(uintptr_t)ct;
    respond_hc.content_type_len = (uint32_t)strnlen(ct, 255);
    respond_hc.body = (uint64_t)(uintptr_t)(res.body ? res.body : res.buf);
    respond_hc.body_len = res.len;
    respond_hc.handler_tsc = t0;
    respond_hc.next = (uint64_t)(uintptr_t)&next_req;
    next_req.buf = (uint64_t)(uintptr_t)req_buf;
    next_req.buf_cap = half;
    unifn_hc(UNIFN_HC_RESPOND, &respond_hc); /* answers and waits for the next request */
  }
}

int unifn_write(unifn_response* res, const void* data, size_t len) {
  if (res->body) return -1; /* the body was set elsewhere */
  if (len > res->cap - res->len) return -1;
  memcpy(res->buf + res->len, data, len);
  res->len += len;
  return 0;
}

int unifn_printf(unifn_response* res, const char* fmt, ...) {
  if (res->body) return -1;
  size_t room = res->cap - res->len;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf((char*)res->buf + res->len, room, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= room) return -1;
  res->len += (size_t)n;
  return 0;
}

void unifn_set_body(unifn_response* res, const void* body, size_t len) {
  res->body = body;
  res->len = len;
}

void unifn_abort(const char* reason) {
  fflush(stdout);
  struct unifn_hc_buf b = {(uint64_t)(uintptr_t)reason, strlen(reason)};
  for (;;) unifn_hc(UNIFN_HC_ABORT, &b);
}

void unifn_log(const char* fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  struct unifn_hc_log l = {1, 0, (uint64_t)(uintptr_t)line,
                           (size_t)n < sizeof line ? (size_t)n : sizeof line - 1};
  unifn_hc(UNIFN_HC_LOG, &l);
}

uint64_t unifn_now_ns(void) {
  unsigned __int128 t = unifn_rdtsc();
  return (uint64_t)(t * 1000000u / tsc_khz);
}

const char* unifn_config(const char* key) { return getenv(key); }
