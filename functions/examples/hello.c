/* hello: greets its input ("Hello, world!" when the body is empty). */
#include <unifn/function.h>

static int hello(const unifn_request* req, unifn_response* res) {
  if (req->len == 0) {
    unifn_printf(res, "Hello, world!\n");
  } else {
    unifn_printf(res, "Hello, %.*s!\n", (int)req->len, (const char*)req->body);
  }
  return 200;
}

UNIFN_FUNCTION(hello)
