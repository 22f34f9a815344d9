/* big_respond: answers with as many bytes of its heap as the request's decimal number says. */
#include <stdlib.h>
#include <string.h>

#include <unifn/function.h>

static int big_respond(const unifn_request* req, unifn_response* res) {
  char digits[32] = {0};
  memcpy(digits, req->body, req->len < sizeof digits - 1 ? req->len : sizeof digits - 1);
  size_t n = strtoul(digits, NULL, 10);
  char* body = malloc(n ? n : 1);
  if (!body) return 500;
  memset(body, 'x', n);
  unifn_set_body(res, body, n);
  return 200;
}

UNIFN_FUNCTION(big_respond)
