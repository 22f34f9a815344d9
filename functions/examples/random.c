/* random: 16 bytes from getrandom, as hex. Distinct in every restored instance. */
#include <sys/random.h>

#include <unifn/function.h>

static int random_hex(const unifn_request* req, unifn_response* res) {
  (void)req;
  unsigned char b[16];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) return 500;
  for (unsigned i = 0; i < sizeof b; i++) unifn_printf(res, "%02x", b[i]);
  unifn_printf(res, "\n");
  return 200;
}

UNIFN_FUNCTION(random_hex)
