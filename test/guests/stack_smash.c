/* stack_smash: overruns a local buffer with 0x41 bytes, over its own return addresses, and returns.
 */
#include <unifn/function.h>

static int stack_smash(const unifn_request* req, unifn_response* res) {
  (void)req;
  (void)res;
  volatile unsigned char buf[16];
  volatile unsigned char* p = buf;
  __asm__ volatile("" : "+r"(p)); /* hide the bounds from the compiler */
  for (unsigned i = 0; i < 1024; i++) p[i] = 0x41;
  return 200;
}

UNIFN_FUNCTION(stack_smash)
