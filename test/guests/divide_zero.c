/* divide_zero: an integer division by zero in the handler (#DE). */
#include <unifn/function.h>

static int divide_zero(const unifn_request* req, unifn_response* res) {
  (void)res;
  volatile int zero = (int)(req->len & 0); /* always 0, but only known at run time */
  return 200 / zero;
}

UNIFN_FUNCTION(divide_zero)
