/* spin_forever: never answers; only the VMM's deadline ends the invocation. */
#include <unifn/function.h>

static int spin_forever(const unifn_request* req, unifn_response* res) {
  (void)req;
  (void)res;
  for (volatile unsigned long spin = 0;; spin++) {
  }
  return 200;
}

UNIFN_FUNCTION(spin_forever)
