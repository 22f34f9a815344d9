/* A test guest that runs the ONNX model in its body on the accelerator, with the inputs after it.
 * Body:   u32 model_len, model bytes, u32 nr_inputs, then per input a struct
 *         unifn_accel_tensor_desc and its data (the desc's bytes), all little-endian.
 * Answer: i32 vaccel return value, i32 device status, u32 nr_outputs, then per output its desc and
 *         its data. The model is registered, run and unregistered within the one request. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <unifn/function.h>
#include <unifn/vaccel.h>

static struct vaccel_session sess;
static int sess_rc = -1;
static struct unifn_model model;

static void init(void) { sess_rc = vaccel_sess_init(&sess, 0); }
UNIFN_INIT(init)

struct reader {
  const uint8_t* p;
  size_t left;
};

static int take(struct reader* r, void* out, size_t n) {
  if (n > r->left) return -1;
  memcpy(out, r->p, n);
  r->p += n, r->left -= n;
  return 0;
}

static uint64_t desc_bytes(const struct unifn_accel_tensor_desc* d) {
  if (d->rank > UNIFN_ACCEL_MODEL_MAX_RANK) return 0;
  uint64_t n = d->type == UNIFN_ACCEL_ARG_INT64 ? 8 : 4;
  for (uint32_t i = 0; i < d->rank; i++) {
    if (d->dims[i] < 0 || d->dims[i] > (1 << 28)) return 0;
    n *= (uint64_t)d->dims[i];
    if (n > (64u << 20)) return 0;
  }
  return n;
}

static int answer(unifn_response* res, int rc, uint32_t nr, const struct unifn_tensor* outs) {
  const int32_t head[3] = {rc, vaccel_last_status(), (int32_t)nr};
  unifn_write(res, head, sizeof head);
  for (uint32_t i = 0; i < nr; i++) {
    if (unifn_write(res, &outs[i].desc, sizeof outs[i].desc) ||
        unifn_write(res, outs[i].data, outs[i].bytes))
      return 507;
  }
  return 200;
}

static int handler(const unifn_request* req, unifn_response* res) {
  if (sess_rc != VACCEL_OK) return answer(res, sess_rc, 0, NULL);
  struct reader r = {req->body, req->len};
  uint32_t model_len = 0, nr_in = 0;
  if (take(&r, &model_len, 4) || model_len > r.left) return 400;
  const uint8_t* bytes = r.p;
  r.p += model_len, r.left -= model_len;
  if (take(&r, &nr_in, 4) || nr_in > UNIFN_ACCEL_MODEL_MAX_IO) return 400;
  struct unifn_tensor in[UNIFN_ACCEL_MODEL_MAX_IO], out[UNIFN_ACCEL_MODEL_MAX_IO];
  memset(in, 0, sizeof in);
  memset(out, 0, sizeof out);
  int status = 200;
  int rc = unifn_model_register(&sess, bytes, model_len, &model);
  if (rc != VACCEL_OK) return answer(res, rc, 0, NULL);
  for (uint32_t i = 0; i < nr_in && status == 200; i++) {
    if (take(&r, &in[i].desc, sizeof in[i].desc)) status = 400;
    const uint64_t n = status == 200 ? desc_bytes(&in[i].desc) : 0;
    in[i].data = malloc(n ? n : 8); /* aligned for any element type, unlike the body */
    in[i].bytes = (uint32_t)n;
    if (status == 200 && (!in[i].data || take(&r, in[i].data, n))) status = 400;
  }
  const uint32_t nr_out = model.io.nr_outputs;
  for (uint32_t i = 0; i < nr_out && status == 200; i++) {
    out[i].bytes = 4u << 20;
    out[i].data = malloc(out[i].bytes);
    if (!out[i].data) status = 507;
  }
  if (status == 200) {
    rc = unifn_model_run(&model, in, (int)nr_in, out, (int)nr_out);
    status = answer(res, rc, rc == VACCEL_OK ? nr_out : 0, out);
  }
  unifn_model_unregister(&model);
  for (uint32_t i = 0; i < UNIFN_ACCEL_MODEL_MAX_IO; i++) free(in[i].data), free(out[i].data);
  return status;
}

UNIFN_FUNCTION(handler)
