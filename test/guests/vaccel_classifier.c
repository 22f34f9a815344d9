/* A test guest for vAccel's image classification call, its signature as vAccel has it.
 * Body:   u32 model_len, the ONNX model, u32 text_len, u32 name_len, then the encoded image.
 * Answer: "rc=R text=T name=N" from vaccel_image_classification with out buffers of text_len and
 *         name_len bytes ("-" for a buffer it did not write).
 * The model is registered as a vAccel resource within the one request. */
#include <stdint.h>
#include <string.h>

#include <unifn/function.h>
#include <unifn/vaccel.h>

static struct vaccel_session sess;
static int sess_rc = -1;
static struct vaccel_resource model;

static void init(void) { sess_rc = vaccel_sess_init(&sess, 0); }
UNIFN_INIT(init)

static int handler(const unifn_request* req, unifn_response* res) {
  uint32_t model_len, text_len, name_len;
  if (sess_rc != VACCEL_OK || req->len < 12) return 400;
  memcpy(&model_len, req->body, 4);
  if (model_len > req->len - 12) return 400;
  memcpy(&text_len, req->body + 4 + model_len, 4);
  memcpy(&name_len, req->body + 8 + model_len, 4);
  unsigned char text[256], name[32];
  if (text_len > sizeof text || name_len > sizeof name) return 400;
  memset(text, '#', sizeof text);
  memset(name, '#', sizeof name);
  int rc = vaccel_resource_init_from_buf(&model, req->body + 4, model_len, VACCEL_RESOURCE_MODEL,
                                         "model.onnx", 1);
  if (rc == VACCEL_OK) rc = vaccel_resource_register(&model, &sess);
  if (rc != VACCEL_OK) {
    unifn_printf(res, "rc=%d register", rc);
    return 200;
  }
  const uint8_t* img = req->body + 12 + model_len;
  rc = vaccel_image_classification(&sess, img, text, name, req->len - 12 - model_len, text_len,
                                   name_len);
  /* What the call wrote, up to its NUL; "-" where it wrote nothing (the buffer's first byte is
   * still the '#' it was filled with). */
  const int tn = text[0] == '#' ? 0 : (int)strnlen((char*)text, text_len);
  const int nn = name[0] == '#' ? 0 : (int)strnlen((char*)name, name_len);
  unifn_printf(res, "rc=%d text=%.*s name=%.*s", rc, tn ? tn : (text[0] == '#'),
               tn ? (char*)text : "-", nn ? nn : (name[0] == '#'), nn ? (char*)name : "-");
  vaccel_resource_unregister(&model, &sess);
  vaccel_resource_release(&model);
  return 200;
}

UNIFN_FUNCTION(handler)
