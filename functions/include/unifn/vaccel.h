/* The accelerator API of the unifn SDK, named after vAccel's: sessions, SGEMM, MinMax, image ops,
 * genop. Calls go to the daemon's virtio-accel device (one VM exit each) and run on the backend the
 * function's config chose (CUDA, CPU). Buffers are used in place: no copies on either side. */
#ifndef UNIFN_VACCEL_H
#define UNIFN_VACCEL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include <unifn/accel_abi.h>
#include <unifn/image_prep.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return values (vAccel's: errno numbers). */
#define VACCEL_OK 0
#define VACCEL_ENOENT ENOENT
#define VACCEL_EIO EIO /* the backend failed, or the device refused the chain outright */
#define VACCEL_ENOMEM ENOMEM
#define VACCEL_ENODEV ENODEV /* no virtio-accel device: the function's config allows no backend */
#define VACCEL_EINVAL EINVAL /* a malformed request or an unknown session */
#define VACCEL_ENOTSUP ENOTSUP

struct vaccel_session {
  uint32_t session_id; /* the device's id; 0 when not open */
  uint32_t hint;       /* the flags it was opened with */
  void* priv;          /* free for the caller */
};

/* An argument of vaccel_genop (vAccel's struct vaccel_arg, with an optional element type). */
struct vaccel_arg {
  uint32_t size;    /* bytes */
  uint32_t argtype; /* enum unifn_accel_arg_type; 0 (RAW) = unspecified */
  void* buf;
};

/* Sessions. Open them in UNIFN_INIT: they are part of the function's snapshot, so every restored
 * instance finds them open. */
int vaccel_sess_init(struct vaccel_session* sess, uint32_t flags);
int vaccel_sess_free(struct vaccel_session* sess);
/* vAccel's newer names for the same. */
int vaccel_session_init(struct vaccel_session* sess, uint32_t flags);
int vaccel_session_release(struct vaccel_session* sess);

/* Does nothing on the host: measures the path. */
int vaccel_noop(struct vaccel_session* sess);

/* C = alpha * A x B + beta * C, row-major; vAccel's signature. */
int vaccel_sgemm(struct vaccel_session* sess, int64_t m, int64_t n, int64_t k, float alpha,
                 float* a, int64_t lda, float* b, int64_t ldb, float beta, float* c, int64_t ldc);

/* Min-max scaling of indata into [low_threshold, high_threshold]; vAccel's signature. */
int vaccel_minmax(struct vaccel_session* sess, const double* indata, int ndata, int low_threshold,
                  int high_threshold, double* outdata, double* min, double* max);

/* Any op in vAccel's generic form: read[0] holds the op code (1, 4 or 8 bytes, little-endian),
 * the rest are the op's arguments in its genop order (see accel_abi.h). */
int vaccel_genop(struct vaccel_session* sess, struct vaccel_arg* read, int nr_read,
                 struct vaccel_arg* write, int nr_write);

/* Image ops (unifn's, over vAccel's OpenCV op): 8-bit images, rows packed, channels interleaved.
 * src holds width * height * channels bytes, dst out_width * out_height * out_channels. */
int vaccel_image_op(struct vaccel_session* sess, const struct unifn_accel_image_params* params,
                    const void* src, void* dst);
int vaccel_image_grayscale(struct vaccel_session* sess, const void* rgb, uint32_t width,
                           uint32_t height, uint32_t channels, void* gray);
int vaccel_image_gaussian_blur(struct vaccel_session* sess, const void* src, uint32_t width,
                               uint32_t height, uint32_t channels, uint32_t ksize, float sigma,
                               void* dst);
int vaccel_image_sobel(struct vaccel_session* sess, const void* gray, uint32_t width,
                       uint32_t height, void* dst);
int vaccel_image_resize(struct vaccel_session* sess, const void* src, uint32_t width,
                        uint32_t height, uint32_t channels, void* dst, uint32_t out_width,
                        uint32_t out_height);

/* Models (ONNX; unifn's extension, see "Models" in accel_abi.h). Register in UNIFN_INIT, from bytes
 * that stay where they are (an embedded model): the registration is part of the snapshot. */
#define UNIFN_MODEL_METADATA_BYTES 16384u

struct unifn_model {
  uint32_t session_id, model_id;
  struct unifn_accel_model_io io; /* the model's declared inputs and outputs (dims -1 where open) */
  char metadata[UNIFN_MODEL_METADATA_BYTES]; /* its metadata_props as "key=value\n" lines */
  /* Image models: the preparation its metadata describes (see <unifn/image_prep.h>), when
   * image_ok; else image_problem says why it is not an image model. */
  int image_ok;
  struct unifn_image_spec image;
  char image_problem[160];
};

/* A tensor of unifn_model_run: data holds bytes bytes, exactly the dims' product for an input, at
 * least the output's size for an output (the output's desc and bytes are filled in on return). */
struct unifn_tensor {
  struct unifn_accel_tensor_desc desc; /* type UNIFN_ACCEL_ARG_FLOAT32 or UNIFN_ACCEL_ARG_INT64 */
  void* data;
  uint32_t bytes;
};

/* Hands the ONNX model (len bytes, which must stay unchanged while it is registered) to the device
 * in sess and fills model. The session's newest model is the one vaccel_image_classification runs.
 * Returns VACCEL_OK; VACCEL_ENOTSUP when the device serves no models; VACCEL_EINVAL for a model
 * the device refused (the daemon's log says why) or bad arguments. */
int unifn_model_register(struct vaccel_session* sess, const void* onnx, size_t len,
                         struct unifn_model* model);
int unifn_model_unregister(struct unifn_model* model);
/* The metadata value of key (copied into out), or -1; see unifn_metadata_get. */
int unifn_model_metadata(const struct unifn_model* model, const char* key, char* out, size_t cap);
/* Runs the model: nr_in inputs and nr_out outputs, the model's counts, in its order. Every size is
 * checked here and again by the device before anything runs. */
int unifn_model_run(const struct unifn_model* model, const struct unifn_tensor* in, int nr_in,
                    struct unifn_tensor* out, int nr_out);

/* vAccel's resource API (v0.6) over the model calls: a model resource from bytes in memory,
 * registered with a session (unifn_model_register). Only models from memory: mem_only must be
 * true and type VACCEL_RESOURCE_MODEL; filename is kept as the resource's name. */
typedef enum {
  VACCEL_RESOURCE_LIB = 0,
  VACCEL_RESOURCE_DATA = 1,
  VACCEL_RESOURCE_MODEL = 2,
} vaccel_resource_type_t;

struct vaccel_resource {
  vaccel_resource_type_t type;
  const void* buf; /* the bytes, which must stay unchanged while registered */
  size_t size;
  char name[64];
  struct unifn_model model; /* filled by vaccel_resource_register */
};

int vaccel_resource_init_from_buf(struct vaccel_resource* res, const void* buf, size_t nr_bytes,
                                  vaccel_resource_type_t type, const char* filename, int mem_only);
int vaccel_resource_register(struct vaccel_resource* res, struct vaccel_session* sess);
int vaccel_resource_unregister(struct vaccel_resource* res, struct vaccel_session* sess);
int vaccel_resource_release(struct vaccel_resource* res);

/* The answer of an image classification. */
struct unifn_classification {
  int class_index;  /* the arg max of the model's first output */
  float confidence; /* its probability (the output as it is when it sums to 1, else its softmax) */
  char label[64];   /* entry class_index of unifn.labels, or the class number without labels */
};
/* Classifies a PNG or JPEG with the session's newest model: decoded and prepared here in the guest
 * (<unifn/image_prep.h>), run on the device. Returns VACCEL_OK; VACCEL_EINVAL when the image does
 * not decode or is too large (the client's fault: err says why); VACCEL_ENOENT when the session has
 * no model; VACCEL_ENOTSUP when the model is not an image model (err says why); VACCEL_ENOMEM;
 * VACCEL_EIO and the rest when the device failed. err may be NULL. */
int unifn_image_classify(struct vaccel_session* sess, const void* img, size_t len,
                         struct unifn_classification* out, char* err, size_t errlen);
/* vAccel's image classification, its signature: img is an encoded PNG or JPEG of len_img bytes;
 * out_text receives the top label (truncated to len_out_text - 1 bytes, NUL-terminated),
 * out_imgname the class number in decimal ("6"), or "" when it does not fit. Returns as
 * unifn_image_classify. */
int vaccel_image_classification(struct vaccel_session* sess, const void* img,
                                unsigned char* out_text, unsigned char* out_imgname, size_t len_img,
                                size_t len_out_text, size_t len_out_imgname);

/* unifn extensions. */
/* The status byte of the last request (UNIFN_ACCEL_OK ...), or -1 when it never reached the device.
 */
int vaccel_last_status(void);
/* The backend serving this function ("cpu", "cuda"), or NULL without a device. */
const char* vaccel_backend(void);
/* One raw request: returns the device's status byte (0..4), or -1 (no device, too many arguments,
 * or a chain the device handed back unanswered). used_len, when not NULL, receives the used length.
 */
int unifn_accel_request(uint32_t command, uint32_t session_id, uint32_t op,
                        const struct vaccel_arg* read, int nr_read, const struct vaccel_arg* write,
                        int nr_write, uint32_t* used_len);

#ifdef __cplusplus
}
#endif

#endif /* UNIFN_VACCEL_H */
