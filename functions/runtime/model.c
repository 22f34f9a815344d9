/* The SDK's model calls over virtio-accel: register an ONNX model, run it, and vAccel's image
 * classification (decoded and prepared in the guest, run on the device). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unifn/accel_abi.h>
#include <unifn/image_prep.h>
#include <unifn/vaccel.h>

#include "accel_internal.h"

#define ARG(ptr, bytes, type) ((struct vaccel_arg){(uint32_t)(bytes), (type), (void*)(ptr)})

/* Each session's newest model, the one vaccel_image_classification runs. */
#define MAX_SESSION_MODELS 16
static struct {
  uint32_t session_id;
  const struct unifn_model* model;
} session_models[MAX_SESSION_MODELS];

static void remember(const struct unifn_model* m) {
  int slot = -1;
  for (int i = 0; i < MAX_SESSION_MODELS; i++)
    if (session_models[i].model && session_models[i].session_id == m->session_id) slot = i;
  for (int i = 0; slot < 0 && i < MAX_SESSION_MODELS; i++)
    if (!session_models[i].model) slot = i;
  if (slot < 0) slot = 0; /* more sessions with models than slots: the oldest is forgotten */
  session_models[slot].session_id = m->session_id;
  session_models[slot].model = m;
}

static void forget(const struct unifn_model* m) {
  for (int i = 0; i < MAX_SESSION_MODELS; i++)
    if (session_models[i].model == m) session_models[i].model = NULL;
}

static const struct unifn_model* session_model(uint32_t session_id) {
  for (int i = 0; i < MAX_SESSION_MODELS; i++)
    if (session_models[i].model && session_models[i].session_id == session_id)
      return session_models[i].model;
  return NULL;
}

/* The bytes a tensor of desc holds, or 0 when the desc is malformed or too large. */
static uint64_t tensor_bytes(const struct unifn_accel_tensor_desc* d) {
  if (d->rank > UNIFN_ACCEL_MODEL_MAX_RANK) return 0;
  uint64_t n = d->type == UNIFN_ACCEL_ARG_FLOAT32 ? 4 : d->type == UNIFN_ACCEL_ARG_INT64 ? 8 : 0;
  for (uint32_t i = 0; n && i < d->rank; i++) {
    if (d->dims[i] < 0 || d->dims[i] > (int64_t)UNIFN_ACCEL_MAX_ARG_BYTES) return 0;
    n *= (uint64_t)d->dims[i];
    if (n > UNIFN_ACCEL_MAX_ARG_BYTES) return 0;
  }
  return n;
}

int unifn_model_register(struct vaccel_session* sess, const void* onnx, size_t len,
                         struct unifn_model* m) {
  if (!sess || !onnx || !m || len == 0 || len > UNIFN_ACCEL_MODEL_MAX_BYTES) return VACCEL_EINVAL;
  if (!(unifn_accel_features() & UNIFN_ACCEL_FEATURE_MODELS))
    return unifn_accel_features() || vaccel_backend() ? VACCEL_ENOTSUP : VACCEL_ENODEV;
  memset(m, 0, sizeof *m);
  struct vaccel_arg in[1] = {ARG(onnx, len, UNIFN_ACCEL_ARG_RAW)};
  struct vaccel_arg out[2] = {ARG(&m->io, sizeof m->io, UNIFN_ACCEL_ARG_RAW),
                              ARG(m->metadata, sizeof m->metadata, UNIFN_ACCEL_ARG_RAW)};
  const int rc = unifn_accel_to_vaccel(unifn_accel_request(
      UNIFN_ACCEL_CMD_MODEL_REGISTER, sess->session_id, 0, in, 1, out, 2, NULL));
  if (rc != VACCEL_OK) return rc;
  m->metadata[sizeof m->metadata - 1] = 0;
  if (m->io.nr_inputs > UNIFN_ACCEL_MODEL_MAX_IO || m->io.nr_outputs > UNIFN_ACCEL_MODEL_MAX_IO)
    return VACCEL_EIO; /* the device answered counts the ABI does not allow */
  m->session_id = sess->session_id;
  m->model_id = m->io.model_id;
  m->image_ok = unifn_image_spec_parse(m->metadata, &m->image, m->image_problem,
                                       sizeof m->image_problem) == 0;
  remember(m);
  return VACCEL_OK;
}

int unifn_model_unregister(struct unifn_model* m) {
  if (!m) return VACCEL_EINVAL;
  uint32_t id = m->model_id;
  struct vaccel_arg in[1] = {ARG(&id, sizeof id, UNIFN_ACCEL_ARG_UINT32)};
  const int rc = unifn_accel_to_vaccel(unifn_accel_request(UNIFN_ACCEL_CMD_MODEL_UNREGISTER,
                                                           m->session_id, 0, in, 1, NULL, 0, NULL));
  if (rc == VACCEL_OK) forget(m);
  return rc;
}

int unifn_model_metadata(const struct unifn_model* m, const char* key, char* out, size_t cap) {
  return m ? unifn_metadata_get(m->metadata, key, out, cap) : -1;
}

int unifn_model_run(const struct unifn_model* m, const struct unifn_tensor* in, int nr_in,
                    struct unifn_tensor* out, int nr_out) {
  if (!m || nr_in < 0 || nr_out < 0 || (uint32_t)nr_in != m->io.nr_inputs ||
      (uint32_t)nr_out != m->io.nr_outputs || (nr_in && !in) || (nr_out && !out))
    return VACCEL_EINVAL;
  struct unifn_accel_model_io io_in, io_out;
  memset(&io_in, 0, sizeof io_in);
  memset(&io_out, 0, sizeof io_out);
  io_in.model_id = m->model_id;
  io_in.nr_inputs = (uint32_t)nr_in;
  io_in.nr_outputs = (uint32_t)nr_out;
  struct vaccel_arg rd[1 + UNIFN_ACCEL_MODEL_MAX_IO], wr[1 + UNIFN_ACCEL_MODEL_MAX_IO];
  rd[0] = ARG(&io_in, sizeof io_in, UNIFN_ACCEL_ARG_RAW);
  wr[0] = ARG(&io_out, sizeof io_out, UNIFN_ACCEL_ARG_RAW);
  for (int i = 0; i < nr_in; i++) {
    const uint64_t n = tensor_bytes(&in[i].desc);
    if (!n || n != in[i].bytes || !in[i].data) return VACCEL_EINVAL;
    io_in.inputs[i] = in[i].desc;
    rd[1 + i] = ARG(in[i].data, n, in[i].desc.type);
  }
  for (int i = 0; i < nr_out; i++) {
    if (!out[i].data || !out[i].bytes || out[i].bytes > UNIFN_ACCEL_MAX_ARG_BYTES)
      return VACCEL_EINVAL;
    wr[1 + i] = ARG(out[i].data, out[i].bytes, UNIFN_ACCEL_ARG_RAW);
  }
  const int rc = unifn_accel_to_vaccel(unifn_accel_request(UNIFN_ACCEL_CMD_DO_OP, m->session_id,
                                                           UNIFN_ACCEL_OP_MODEL_RUN, rd, 1 + nr_in,
                                                           wr, 1 + nr_out, NULL));
  if (rc != VACCEL_OK) return rc;
  for (int i = 0; i < nr_out; i++) {
    const uint64_t n = tensor_bytes(&io_out.outputs[i]);
    if (n > out[i].bytes) return VACCEL_EIO; /* the device claims more than it could write */
    out[i].desc = io_out.outputs[i];
    out[i].bytes = (uint32_t)n;
  }
  return VACCEL_OK;
}

int vaccel_resource_init_from_buf(struct vaccel_resource* res, const void* buf, size_t nr_bytes,
                                  vaccel_resource_type_t type, const char* filename, int mem_only) {
  if (!res || !buf || !nr_bytes || nr_bytes > UNIFN_ACCEL_MODEL_MAX_BYTES) return VACCEL_EINVAL;
  if (type != VACCEL_RESOURCE_MODEL || !mem_only) return VACCEL_ENOTSUP;
  memset(res, 0, sizeof *res);
  res->type = type;
  res->buf = buf;
  res->size = nr_bytes;
  snprintf(res->name, sizeof res->name, "%s", filename ? filename : "");
  return VACCEL_OK;
}

int vaccel_resource_register(struct vaccel_resource* res, struct vaccel_session* sess) {
  if (!res || !res->buf) return VACCEL_EINVAL;
  return unifn_model_register(sess, res->buf, res->size, &res->model);
}

int vaccel_resource_unregister(struct vaccel_resource* res, struct vaccel_session* sess) {
  if (!res || !sess || res->model.session_id != sess->session_id || !res->model.model_id)
    return VACCEL_EINVAL;
  const int rc = unifn_model_unregister(&res->model);
  if (rc == VACCEL_OK) res->model.model_id = 0;
  return rc;
}

int vaccel_resource_release(struct vaccel_resource* res) {
  if (!res) return VACCEL_EINVAL;
  if (res->model.model_id) return VACCEL_EINVAL; /* still registered */
  memset(res, 0, sizeof *res);
  return VACCEL_OK;
}

static void say(char* err, size_t errlen, const char* text) {
  if (err && errlen) snprintf(err, errlen, "%s", text);
}

/* The arg max of p[0..n-1] and its probability: p as it is when it is a distribution (the model
 * ends in Softmax), else its softmax (the model answers logits). */
static void top_class(const float* p, size_t n, int* index, float* confidence) {
  size_t best = 0;
  double sum = 0;
  int distribution = 1;
  for (size_t i = 0; i < n; i++) {
    if (p[i] > p[best]) best = i;
    if (!(p[i] >= 0 && p[i] <= 1)) distribution = 0;
    sum += p[i];
  }
  *index = (int)best;
  if (distribution && fabs(sum - 1) < 1e-3) {
    *confidence = p[best];
    return;
  }
  double z = 0;
  for (size_t i = 0; i < n; i++) z += exp((double)p[i] - (double)p[best]);
  *confidence = (float)(1 / z);
}

int unifn_image_classify(struct vaccel_session* sess, const void* img, size_t len,
                         struct unifn_classification* out, char* err, size_t errlen) {
  if (!sess || !out) return VACCEL_EINVAL;
  const struct unifn_model* m = session_model(sess->session_id);
  if (!m) {
    say(err, errlen, "the session has no model registered");
    return VACCEL_ENOENT;
  }
  if (!m->image_ok) {
    say(err, errlen, m->image_problem);
    return VACCEL_ENOTSUP;
  }
  if (m->io.nr_inputs != 1 || m->io.nr_outputs < 1 || m->io.inputs[0].rank != 4 ||
      m->io.inputs[0].type != UNIFN_ACCEL_ARG_FLOAT32) {
    say(err, errlen, "the model does not take one float image [N, C, H, W]");
    return VACCEL_ENOTSUP;
  }
  const struct unifn_image_spec* spec = &m->image;
  struct unifn_tensor input = {
      {UNIFN_ACCEL_ARG_FLOAT32, 4, {1, spec->channels, spec->height, spec->width, 0, 0, 0, 0}},
      NULL,
      (uint32_t)(unifn_image_spec_floats(spec) * sizeof(float))};
  for (int i = 1; i < 4; i++)
    if (m->io.inputs[0].dims[i] >= 0 && m->io.inputs[0].dims[i] != input.desc.dims[i]) {
      say(err, errlen, "the model's unifn.input disagrees with its input's shape");
      return VACCEL_ENOTSUP;
    }
  /* Each output as large as its declared shape, or up to 64 KiB where a dim is open. */
  struct unifn_tensor outs[UNIFN_ACCEL_MODEL_MAX_IO];
  memset(outs, 0, sizeof outs);
  const int nr_out = (int)m->io.nr_outputs;
  int rc = VACCEL_OK;
  input.data = malloc(input.bytes);
  if (!input.data) rc = VACCEL_ENOMEM;
  for (int i = 0; rc == VACCEL_OK && i < nr_out; i++) {
    int open = 0;
    for (uint32_t d = 0; d < m->io.outputs[i].rank && d < UNIFN_ACCEL_MODEL_MAX_RANK; d++)
      open |= m->io.outputs[i].dims[d] < 0;
    const uint64_t n = open ? 65536 : tensor_bytes(&m->io.outputs[i]);
    outs[i].bytes = (uint32_t)(n ? n : 8);
    outs[i].data = malloc(outs[i].bytes);
    if (!outs[i].data) rc = VACCEL_ENOMEM;
  }
  if (rc == VACCEL_ENOMEM) say(err, errlen, "out of memory for the model's tensors");
  if (rc == VACCEL_OK) {
    const int prep =
        unifn_image_prepare(img, len, spec, input.data, input.bytes / sizeof(float), err, errlen);
    rc = prep == 0 ? VACCEL_OK : prep == UNIFN_IMAGE_NOMEM ? VACCEL_ENOMEM : VACCEL_EINVAL;
  }
  if (rc == VACCEL_OK) {
    rc = unifn_model_run(m, &input, 1, outs, nr_out);
    if (rc != VACCEL_OK) say(err, errlen, "the accelerator failed to run the model");
  }
  if (rc == VACCEL_OK && (outs[0].desc.type != UNIFN_ACCEL_ARG_FLOAT32 || outs[0].bytes < 4)) {
    say(err, errlen, "the model's first output is not float scores");
    rc = VACCEL_ENOTSUP;
  }
  if (rc == VACCEL_OK) {
    top_class(outs[0].data, outs[0].bytes / sizeof(float), &out->class_index, &out->confidence);
    static char labels[UNIFN_MODEL_METADATA_BYTES]; /* static: too large for the stack */
    if (unifn_metadata_get(m->metadata, "unifn.labels", labels, sizeof labels) < 0 ||
        unifn_list_entry(labels, out->class_index, out->label, sizeof out->label) < 0)
      snprintf(out->label, sizeof out->label, "%d", out->class_index);
  }
  free(input.data);
  for (int i = 0; i < nr_out; i++) free(outs[i].data);
  return rc;
}

int vaccel_image_classification(struct vaccel_session* sess, const void* img,
                                unsigned char* out_text, unsigned char* out_imgname, size_t len_img,
                                size_t len_out_text, size_t len_out_imgname) {
  struct unifn_classification c;
  const int rc = unifn_image_classify(sess, img, len_img, &c, NULL, 0);
  if (rc != VACCEL_OK) return rc;
  if (out_text && len_out_text) snprintf((char*)out_text, len_out_text, "%s", c.label);
  if (out_imgname && len_out_imgname) {
    char num[16];
    const int n = snprintf(num, sizeof num, "%d", c.class_index);
    if ((size_t)n < len_out_imgname)
      memcpy(out_imgname, num, (size_t)n + 1);
    else
      out_imgname[0] = 0;
  }
  return VACCEL_OK;
}
