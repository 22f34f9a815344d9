/* respond_overflow: answers with a body length of UINT64_MAX - 15, so body + len wraps past 2^64.
 */
#include <stdint.h>

#include <unifn/function.h>

static int respond_overflow(const unifn_request* req, unifn_response* res) {
  unifn_set_body(res, req->body, (size_t)(UINT64_MAX - 15));
  return 200;
}

UNIFN_FUNCTION(respond_overflow)
