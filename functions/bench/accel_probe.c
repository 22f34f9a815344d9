/* accel_probe: a test and benchmark guest that drives the virtio-accel device with commands from
 * its body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <unifn/function.h>
#include <unifn/vaccel.h>

#include <unifn/accel_probe.h>

static struct vaccel_session sess;
static int sess_rc = -1;
static float *ma, *mb, *mc;
static uint32_t gm, gn, gk;

static void init(void) { sess_rc = vaccel_sess_init(&sess, 7); }
UNIFN_INIT(init)

/* One VM exit with no device work: a read of the first device's magic register (the VMM places
 * the first MMIO device at 0xD0000000). The baseline the NOOP round trip is compared with. */
static uint32_t mmio_exit(void) {
  uint32_t v;
  __asm__ volatile("movl (%1), %0" : "=r"(v) : "r"((uintptr_t)0xD0000000u) : "memory");
  return v;
}

static int timings(unifn_response* res, uint32_t n, int (*one)(void)) {
  if ((uint64_t)n * 4 > res->cap) return 400;
  uint32_t* out = (uint32_t*)res->buf;
  for (uint32_t i = 0; i < n; i++) {
    const uint64_t t0 = unifn_now_ns();
    if (one() != 0) return 500;
    out[i] = (uint32_t)(unifn_now_ns() - t0);
  }
  unifn_set_body(res, res->buf, 4ull * n);
  return 200;
}

static int one_noop(void) { return vaccel_noop(&sess); }
static int one_exit(void) { return mmio_exit() == 0x74726976 ? 0 : -1; }

static uint32_t lcg = 12345;
static float rnd(void) {
  lcg = lcg * 1664525u + 1013904223u;
  return (float)(lcg >> 8) / (float)(1u << 24) - 0.5f;
}

static int handler(const unifn_request* req, unifn_response* res) {
  struct probe_cmd c;
  if (req->len < sizeof c) return 400;
  memcpy(&c, req->body, sizeof c);
  const uint8_t* payload = req->body + sizeof c;
  const size_t plen = req->len - sizeof c;
  switch (c.cmd) {
    case PROBE_NOOP_TIMES:
      return timings(res, c.a, one_noop);
    case PROBE_EXIT_TIMES:
      return timings(res, c.a, one_exit);
    case PROBE_SGEMM_SETUP: {
      free(ma), free(mb), free(mc);
      gm = c.a, gn = c.b, gk = c.c;
      ma = malloc(4ull * gm * gk), mb = malloc(4ull * gk * gn), mc = calloc(1, 4ull * gm * gn);
      if (!ma || !mb || !mc) return 507;
      lcg = c.d;
      for (uint64_t i = 0; i < (uint64_t)gm * gk; i++) ma[i] = rnd();
      for (uint64_t i = 0; i < (uint64_t)gk * gn; i++) mb[i] = rnd();
      return 200;
    }
    case PROBE_SGEMM_RUN: {
      for (uint32_t r = 0; r < c.a; r++)
        if (vaccel_sgemm(&sess, gm, gn, gk, 1.0f, ma, gk, mb, gn, 0.0f, mc, gn) != VACCEL_OK)
          return 500;
      /* A few elements of C, so the caller can check the result. */
      unifn_write(res, mc, 4 * (gm * gn < 16 ? gm * gn : 16));
      return 200;
    }
    case PROBE_MINMAX: {
      const int n = (int)c.a;
      if (n < 1 || plen != 8ull * (uint64_t)n || 8ull * (uint64_t)n + 16 > res->cap) return 400;
      double* in = malloc(8ull * n);
      memcpy(in, payload, 8ull * n);
      double* out = (double*)res->buf;
      double mn = 0, mx = 0;
      int rc = vaccel_minmax(&sess, in, n, (int)c.b, (int)c.c, out, &mn, &mx);
      free(in);
      if (rc != VACCEL_OK) return 500;
      memcpy(out + n, &mn, 8);
      memcpy(out + n + 1, &mx, 8);
      unifn_set_body(res, res->buf, 8ull * n + 16);
      return 200;
    }
    case PROBE_IMAGE: {
      struct unifn_accel_image_params p;
      if (plen < sizeof p) return 400;
      memcpy(&p, payload, sizeof p);
      const uint64_t in_len = (uint64_t)p.width * p.height * p.channels;
      const uint64_t out_len = (uint64_t)p.out_width * p.out_height * p.out_channels;
      if (plen != sizeof p + in_len || out_len > res->cap) return 400;
      int rc = vaccel_image_op(&sess, &p, payload + sizeof p, res->buf);
      if (rc != VACCEL_OK) {
        unifn_printf(res, "error %d status %d", rc, vaccel_last_status());
        return 500;
      }
      unifn_set_body(res, res->buf, out_len);
      return 200;
    }
    case PROBE_SESSION: {
      int rc = vaccel_noop(&sess);
      unifn_printf(res, "session=%u hint=%u init=%d noop=%d status=%d backend=%s", sess.session_id,
                   sess.hint, sess_rc, rc, vaccel_last_status(),
                   vaccel_backend() ? vaccel_backend() : "none");
      return 200;
    }
    case PROBE_OPEN_SESSION: {
      struct vaccel_session s2;
      int rc = vaccel_sess_init(&s2, 0);
      unifn_printf(res, "rc=%d session=%u", rc, rc == VACCEL_OK ? s2.session_id : 0);
      return 200;
    }
    case PROBE_USE_SESSION: {
      struct vaccel_session s2 = {c.a, 0, NULL};
      int rc = vaccel_noop(&s2);
      unifn_printf(res, "rc=%d status=%d", rc, vaccel_last_status());
      return 200;
    }
    case PROBE_FREE_SESSION: {
      struct vaccel_session s2 = {c.a, 0, NULL};
      int rc = vaccel_sess_free(&s2);
      unifn_printf(res, "rc=%d status=%d", rc, vaccel_last_status());
      return 200;
    }
    case PROBE_BAD_REQUESTS: {
      /* Each refused with its status; the guest goes on and a good request still works after. */
      double in[4] = {1, 2, 3, 4}, out[4], mn, mx;
      int ndata = 4, lo = 0, hi = 1;
      struct vaccel_arg rd[4] = {{32, UNIFN_ACCEL_ARG_FLOAT64, in},
                                 {4, UNIFN_ACCEL_ARG_INT32, &ndata},
                                 {4, UNIFN_ACCEL_ARG_INT32, &lo},
                                 {4, UNIFN_ACCEL_ARG_INT32, &hi}};
      struct vaccel_arg wr[3] = {{32, UNIFN_ACCEL_ARG_FLOAT64, out},
                                 {8, UNIFN_ACCEL_ARG_FLOAT64, &mn},
                                 {8, UNIFN_ACCEL_ARG_FLOAT64, &mx}};
      const uint32_t s = sess.session_id;
      int unknown_op = unifn_accel_request(UNIFN_ACCEL_CMD_DO_OP, s, UNIFN_ACCEL_OP_IMAGE_CLASSIFY,
                                           NULL, 0, NULL, 0, NULL);
      int unknown_session = unifn_accel_request(UNIFN_ACCEL_CMD_DO_OP, 0x7777, UNIFN_ACCEL_OP_NOOP,
                                                NULL, 0, NULL, 0, NULL);
      int unknown_command = unifn_accel_request(77, s, 0, NULL, 0, NULL, 0, NULL);
      struct vaccel_arg far = wr[0];
      far.buf = (void*)(uintptr_t)0xC0000000u; /* above this guest's RAM */
      struct vaccel_arg wr_far[3] = {far, wr[1], wr[2]};
      int outside_ram = unifn_accel_request(UNIFN_ACCEL_CMD_DO_OP, s, UNIFN_ACCEL_OP_MINMAX, rd, 4,
                                            wr_far, 3, NULL);
      rd[0].size = 24; /* shorter than ndata says */
      int short_arg =
          unifn_accel_request(UNIFN_ACCEL_CMD_DO_OP, s, UNIFN_ACCEL_OP_MINMAX, rd, 4, wr, 3, NULL);
      rd[0].size = 32;
      struct vaccel_arg wr_overlap[3] = {wr[0], {8, UNIFN_ACCEL_ARG_FLOAT64, &out[1]}, wr[2]};
      int overlap = unifn_accel_request(UNIFN_ACCEL_CMD_DO_OP, s, UNIFN_ACCEL_OP_MINMAX, rd, 4,
                                        wr_overlap, 3, NULL);
      int good =
          unifn_accel_request(UNIFN_ACCEL_CMD_DO_OP, s, UNIFN_ACCEL_OP_MINMAX, rd, 4, wr, 3, NULL);
      unifn_printf(res,
                   "unknown_op=%d unknown_session=%d unknown_command=%d outside_ram=%d "
                   "short_arg=%d overlap=%d good=%d max=%g",
                   unknown_op, unknown_session, unknown_command, outside_ram, short_arg, overlap,
                   good, mx);
      return 200;
    }
    case PROBE_GENOP: {
      /* vAccel's generic form: read[0] is the op code, then the op's own arguments. */
      uint32_t op = UNIFN_ACCEL_OP_MINMAX, noop = UNIFN_ACCEL_OP_NOOP;
      double in[3] = {2, 8, 5}, out[3], mn = 0, mx = 0;
      int ndata = 3, lo = 0, hi = 6;
      struct vaccel_arg rd[5] = {
          {4, 0, &op}, {24, 0, in}, {4, 0, &ndata}, {4, 0, &lo}, {4, 0, &hi}};
      struct vaccel_arg wr[3] = {{24, 0, out}, {8, 0, &mn}, {8, 0, &mx}};
      int rc = vaccel_genop(&sess, rd, 5, wr, 3);
      struct vaccel_arg nrd[1] = {{4, 0, &noop}};
      int rc_noop = vaccel_genop(&sess, nrd, 1, NULL, 0);
      struct vaccel_arg bad[1] = {{3, 0, &noop}}; /* an op code must be 1, 4 or 8 bytes */
      int rc_bad = vaccel_genop(&sess, bad, 1, NULL, 0);
      unifn_printf(res, "minmax=%d min=%g max=%g out=%g,%g,%g noop=%d bad=%d", rc, mn, mx, out[0],
                   out[1], out[2], rc_noop, rc_bad);
      return 200;
    }
    default:
      return 404;
  }
}

UNIFN_FUNCTION(handler)
