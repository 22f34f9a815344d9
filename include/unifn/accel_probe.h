/* Commands of the accel_probe guest (functions/bench/accel_probe.c): shared by the guest, the tests
 * and the benchmark. */
#ifndef UNIFN_ACCEL_PROBE_H
#define UNIFN_ACCEL_PROBE_H

#include <stdint.h>

/* The body starts with this; a payload may follow. */
struct probe_cmd {
  uint32_t cmd;
  uint32_t a, b, c, d;
};

enum probe_command {
  PROBE_NOOP_TIMES = 1, /* a = count: that many NOOP ops; answers u32 ns per op */
  PROBE_EXIT_TIMES =
      2, /* a = count: that many bare MMIO exits (no device work); answers u32 ns each */
  PROBE_SGEMM_SETUP = 3, /* a, b, c = m, n, k; d = seed: allocates and fills A and B */
  PROBE_SGEMM_RUN = 4,   /* a = repetitions of C = A x B; answers the first 16 floats of C */
  PROBE_MINMAX = 5, /* a = n, b = low, c = high; payload n doubles; answers n doubles, min, max */
  PROBE_IMAGE =
      6, /* payload: struct unifn_accel_image_params, then the pixels; answers the output pixels */
  PROBE_SESSION =
      7, /* answers "session=<id> hint=<flags> init=<rc> noop=<rc> status=<s> backend=<name>" */
  PROBE_OPEN_SESSION = 8,  /* opens a session now; answers "rc=<rc> session=<id>" */
  PROBE_USE_SESSION = 9,   /* a = session id: a NOOP in it; answers "rc=<rc> status=<s>" */
  PROBE_FREE_SESSION = 10, /* a = session id: destroys it; answers "rc=<rc> status=<s>" */
  PROBE_BAD_REQUESTS = 11, /* malformed requests from the guest; answers "name=<status> ..." */
  PROBE_GENOP = 12, /* MinMax and NOOP through vaccel_genop; answers "minmax=<rc> min=<v> max=<v>
                       noop=<rc> bad=<rc>" */
};

#endif
