/* misbehave: a guest that fails on request: "null", "div0", "loop", "abort", "exit", "ud2"; else
 * "ok". */
#include <stdlib.h>
#include <string.h>

#include <unifn/function.h>

static int is(const unifn_request* req, const char* word) {
  return req->len == strlen(word) && memcmp(req->body, word, req->len) == 0;
}

static int misbehave(const unifn_request* req, unifn_response* res) {
  if (is(req, "null")) return *(volatile int*)0;
  if (is(req, "div0")) {
    volatile int zero = 0;
    return 200 / zero;
  }
  if (is(req, "loop"))
    for (volatile int spin = 0;; spin++) {
    }
  if (is(req, "abort")) unifn_abort("told to abort");
  if (is(req, "exit")) exit(3);
  if (is(req, "ud2")) __asm__ volatile("ud2");
  unifn_printf(res, "ok");
  return 200;
}

UNIFN_FUNCTION(misbehave)
