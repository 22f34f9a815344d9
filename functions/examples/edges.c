/* edges: body = a PNG or JPEG image (decoded here, <unifn/image_prep.h>); answers a PNG of its
 * Sobel edges, computed by the accelerator (grayscale, then Sobel). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <unifn/function.h>
#include <unifn/image_prep.h>
#include <unifn/vaccel.h>

static struct vaccel_session sess;
static int sess_rc = -1;

static void init(void) { sess_rc = vaccel_sess_init(&sess, 0); }
UNIFN_INIT(init)

struct sink {
  unifn_response* res;
  int full;
};

static void write_png(void* ctx, void* data, int size) {
  struct sink* s = ctx;
  if (!s->full && unifn_write(s->res, data, (size_t)size) != 0) s->full = 1;
}

static int edges(const unifn_request* req, unifn_response* res) {
  if (sess_rc != VACCEL_OK) {
    unifn_printf(res, "no accelerator session (error %d)\n", sess_rc);
    return 503;
  }
  int w, h, n;
  char why[200];
  const int info = unifn_image_info(req->body, req->len, &w, &h, &n, why, sizeof why);
  if (info != 0) {
    unifn_printf(res, "%s\n", why);
    return info == UNIFN_IMAGE_TOO_LARGE ? 413 : 400;
  }
  const int want = n <= 2 ? 1 : n; /* gray(+alpha) as gray; RGB and RGBA as they are */
  uint8_t* px = unifn_image_decode(req->body, req->len, want, &w, &h, why, sizeof why);
  if (!px) {
    unifn_printf(res, "%s\n", why);
    return 400;
  }
  const size_t count = (size_t)w * (size_t)h;
  uint8_t *gray = want == 1 ? px : malloc(count), *out = malloc(count);
  int status = 200;
  if (!gray || !out) {
    unifn_printf(res, "out of memory for a %dx%d image\n", w, h);
    status = 413;
    goto done;
  }
  int rc = want == 1
               ? VACCEL_OK
               : vaccel_image_grayscale(&sess, px, (uint32_t)w, (uint32_t)h, (uint32_t)want, gray);
  if (rc == VACCEL_OK) rc = vaccel_image_sobel(&sess, gray, (uint32_t)w, (uint32_t)h, out);
  if (rc != VACCEL_OK) {
    unifn_printf(res, "the accelerator failed: error %d, device status %d\n", rc,
                 vaccel_last_status());
    status = 502;
    goto done;
  }
  struct sink s = {res, 0};
  if (!unifn_image_write_png(write_png, &s, w, h, 1, out, w) || s.full) {
    res->len = 0;
    unifn_printf(res, "the PNG of a %dx%d image does not fit the response\n", w, h);
    status = 413;
    goto done;
  }
  res->content_type = "image/png";
done:
  if (gray != px) free(gray);
  free(out);
  unifn_image_free(px);
  return status;
}

UNIFN_FUNCTION(edges)
