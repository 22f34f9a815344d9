/* edges: body = a PNG or JPEG image (decoded here with stb_image); answers a PNG of its Sobel
 * edges, computed by the accelerator (grayscale, then Sobel). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <unifn/function.h>
#include <unifn/vaccel.h>

/* stb is third-party code built with our warnings off; PNG and JPEG only, no stdio. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#include <stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb_image_write.h>
#pragma GCC diagnostic pop

#define MAX_PIXELS (16u << 20)

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
  if (req->len > INT32_MAX || !stbi_info_from_memory(req->body, (int)req->len, &w, &h, &n)) {
    unifn_printf(res, "the body is not a PNG or JPEG image: %s\n", stbi_failure_reason());
    return 400;
  }
  if ((uint64_t)w * (uint64_t)h > MAX_PIXELS) {
    unifn_printf(res, "the image is %dx%d; at most %u pixels are accepted\n", w, h, MAX_PIXELS);
    return 413;
  }
  const int want = n <= 2 ? 1 : n; /* gray(+alpha) as gray; RGB and RGBA as they are */
  uint8_t* px = stbi_load_from_memory(req->body, (int)req->len, &w, &h, &n, want);
  if (!px) {
    unifn_printf(res, "the image could not be decoded: %s\n", stbi_failure_reason());
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
  if (!stbi_write_png_to_func(write_png, &s, w, h, 1, out, w) || s.full) {
    res->len = 0;
    unifn_printf(res, "the PNG of a %dx%d image does not fit the response\n", w, h);
    status = 413;
    goto done;
  }
  res->content_type = "image/png";
done:
  if (gray != px) free(gray);
  free(out);
  stbi_image_free(px);
  return status;
}

UNIFN_FUNCTION(edges)
