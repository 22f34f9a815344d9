/* unknown_hypercall: outl to UNIFN_HC_BASE + UNIFN_HC_COUNT, the first hypercall number the ABI
 * does not define (as a guest built for a newer ABI would), then answers if it gets control back.
 */
#include <stdint.h>

#include <unifn/abi.h>
#include <unifn/function.h>

static int unknown_hypercall(const unifn_request* req, unifn_response* res) {
  (void)req;
  static struct unifn_hc_buf arg;
  __asm__ volatile("outl %0, %1"
                   :
                   : "a"((uint32_t)(uintptr_t)&arg),
                     "Nd"((uint16_t)(UNIFN_HC_BASE + UNIFN_HC_COUNT))
                   : "memory");
  unifn_printf(res, "hypercall %u was ignored\n", (unsigned)UNIFN_HC_COUNT);
  return 200;
}

UNIFN_FUNCTION(unknown_hypercall)
