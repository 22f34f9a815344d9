/* sgemm: body = little-endian u32 m, n, k, then A (m x k) and B (k x n), row-major float32;
 * answers C = A x B (m x n float32), computed by the accelerator in place (no copies in the guest).
 */
#include <stdint.h>
#include <string.h>

#include <unifn/function.h>
#include <unifn/vaccel.h>

static struct vaccel_session sess;
static int sess_rc = -1;

/* The session is opened before the snapshot, so every instance starts with it open. */
static void init(void) { sess_rc = vaccel_sess_init(&sess, 0); }
UNIFN_INIT(init)

static uint32_t le32(const uint8_t* p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int sgemm(const unifn_request* req, unifn_response* res) {
  if (sess_rc != VACCEL_OK) {
    unifn_printf(res, "no accelerator session (error %d)\n", sess_rc);
    return 503;
  }
  if (req->len < 12) {
    unifn_printf(res, "the body is %zu bytes; it must start with u32 m, n, k (little-endian)\n",
                 req->len);
    return 400;
  }
  const uint32_t m = le32(req->body), n = le32(req->body + 4), k = le32(req->body + 8);
  if (m == 0 || n == 0 || k == 0 || m > 65536 || n > 65536 || k > 65536) {
    unifn_printf(res, "m=%u n=%u k=%u: each must be 1 to 65536\n", m, n, k);
    return 400;
  }
  const uint64_t want = 12 + 4 * ((uint64_t)m * k + (uint64_t)k * n);
  if (req->len != want) {
    unifn_printf(res, "the body is %zu bytes; m=%u n=%u k=%u need %llu\n", req->len, m, n, k,
                 (unsigned long long)want);
    return 400;
  }
  const uint64_t out = 4ull * m * n;
  if (out > res->cap) {
    unifn_printf(res, "C would be %llu bytes, more than the %zu the response can hold\n",
                 (unsigned long long)out, res->cap);
    return 413;
  }
  const uint8_t *a = req->body + 12, *b = a + 4ull * m * k;
  if ((uintptr_t)a % 4 || (uintptr_t)res->buf % 4) {
    unifn_printf(res, "misaligned buffers\n");
    return 500;
  }
  /* vAccel's signature takes non-const inputs; the device only reads A and B. */
  int rc = vaccel_sgemm(&sess, m, n, k, 1.0f, (float*)(uintptr_t)a, k, (float*)(uintptr_t)b, n,
                        0.0f, (float*)res->buf, n);
  if (rc != VACCEL_OK) {
    unifn_printf(res, "the accelerator failed: error %d, device status %d\n", rc,
                 vaccel_last_status());
    return 502;
  }
  unifn_set_body(res, res->buf, out);
  res->content_type = "application/octet-stream";
  return 200;
}

UNIFN_FUNCTION(sgemm)
