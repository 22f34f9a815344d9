/* classify: body = a PNG or JPEG of any size, decoded and prepared here in the guest; the embedded
 * Fashion-MNIST model runs on the accelerator. Answers {"label": "...", "class": N,
 * "confidence": p}, or 400 for a body that is not an image. */
#include <stddef.h>
#include <stdint.h>

#include <unifn/function.h>
#include <unifn/vaccel.h>

extern const uint8_t classify_model[];
extern const uint64_t classify_model_size;

static struct vaccel_session sess;
static struct vaccel_resource model_res; /* the model, as vAccel code holds it */
static int init_rc = -1;
static const char* init_step = "session";
static int bad_metadata; /* registered, but its metadata describes no image input */

/* Registered before the snapshot: every instance starts with the model loaded. */
static void init(void) {
  init_rc = vaccel_sess_init(&sess, 0);
  if (init_rc != VACCEL_OK) return;
  init_step = "model registration";
  init_rc = vaccel_resource_init_from_buf(&model_res, classify_model, classify_model_size,
                                          VACCEL_RESOURCE_MODEL, "fashion_cnn.onnx", 1);
  if (init_rc == VACCEL_OK) init_rc = vaccel_resource_register(&model_res, &sess);
  if (init_rc == VACCEL_OK && !model_res.model.image_ok) {
    init_step = "model metadata";
    init_rc = VACCEL_ENOTSUP;
    bad_metadata = 1;
  }
}
UNIFN_INIT(init)

/* s as a JSON string's contents. */
static void json_text(unifn_response* res, const char* s) {
  for (; *s; s++) {
    const unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      unifn_printf(res, "\\%c", c);
    else if (c < 0x20)
      unifn_printf(res, "\\u%04x", c);
    else
      unifn_write(res, s, 1);
  }
}

static int classify(const unifn_request* req, unifn_response* res) {
  if (init_rc != VACCEL_OK) {
    unifn_printf(res, "the model is not available: %s failed (error %d)%s%s\n", init_step, init_rc,
                 bad_metadata ? ": " : "", bad_metadata ? model_res.model.image_problem : "");
    return 503;
  }
  struct unifn_classification c;
  char why[200] = "";
  const int rc = unifn_image_classify(&sess, req->body, req->len, &c, why, sizeof why);
  if (rc == VACCEL_EINVAL) {
    unifn_printf(res, "%s\n", why);
    return 400;
  }
  if (rc == VACCEL_ENOMEM) {
    unifn_printf(res, "%s\n", why);
    return 413;
  }
  if (rc != VACCEL_OK) {
    unifn_printf(res, "the classification failed: %s (error %d, device status %d)\n", why, rc,
                 vaccel_last_status());
    return 502;
  }
  res->content_type = "application/json";
  unifn_printf(res, "{\"label\": \"");
  json_text(res, c.label);
  unifn_printf(res, "\", \"class\": %d, \"confidence\": %.4f}\n", c.class_index,
               (double)c.confidence);
  return 200;
}

UNIFN_FUNCTION(classify)
