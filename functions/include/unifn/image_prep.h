/* Image preparation for image models: decode a PNG or JPEG, convert and resize it to the model's
 * input and normalise it as the model's metadata says. Portable C without system calls (malloc
 * only), built into the guest library and into a host library, so that a benchmark can compare
 * the guest against the same preparation called directly in the host.
 *
 * Model metadata keys (ONNX metadata_props, handed to the guest as "key=value\n" lines):
 *   unifn.input   "WIDTHxHEIGHT gray" or "WIDTHxHEIGHT rgb" (channels 1 or 3), e.g. "28x28 gray"
 *   unifn.mean    one number, or one per channel separated by commas (default 0)
 *   unifn.std     the same (default 1; each > 0)
 *   unifn.invert  "1": light and dark swapped before normalising (default "0")
 *   unifn.labels  the class names in class order, separated by commas
 * A pixel p (0..255) becomes ((invert ? 255 - p : p) / 255 - mean[c]) / std[c], planar (NCHW). */
#ifndef UNIFN_IMAGE_PREP_H
#define UNIFN_IMAGE_PREP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest image accepted, per side and in pixels: a hostile image fails cleanly, before any large
 * allocation. */
#define UNIFN_IMAGE_MAX_SIDE 16384u
#define UNIFN_IMAGE_MAX_PIXELS (16u << 20)
/* Largest model input side unifn.input may name. */
#define UNIFN_IMAGE_MAX_INPUT_SIDE 4096u

struct unifn_image_spec {
  uint32_t width, height, channels; /* channels 1 (gray) or 3 (RGB) */
  int invert;
  float mean[3], std[3];
};

/* The value of `key` in "key=value\n" lines, copied NUL-terminated into out (cap bytes). Returns
 * its length, or -1 when the key is absent or the value does not fit. */
int unifn_metadata_get(const char* metadata, const char* key, char* out, size_t cap);

/* Reads unifn.input, unifn.mean, unifn.std and unifn.invert. Returns 0, or -1 with a sentence in
 * err (errlen bytes) naming the key that is missing or malformed. */
int unifn_image_spec_parse(const char* metadata, struct unifn_image_spec* spec, char* err,
                           size_t errlen);

/* The floats one prepared image takes: width * height * channels. */
size_t unifn_image_spec_floats(const struct unifn_image_spec* spec);

/* Decodes the PNG or JPEG img (len bytes) and writes it prepared as spec says into out, which
 * holds out_floats floats (at least unifn_image_spec_floats(spec)). Returns 0; -1 when the image
 * is not a PNG or JPEG that decodes, or is too large; -2 when memory ran out, -3 when spec or out
 * is unusable; each with a sentence in err. */
int unifn_image_prepare(const void* img, size_t len, const struct unifn_image_spec* spec,
                        float* out, size_t out_floats, char* err, size_t errlen);

/* What unifn_image_info, unifn_image_decode and unifn_image_prepare answer besides 0. */
#define UNIFN_IMAGE_BAD (-1)       /* not a PNG or JPEG that decodes */
#define UNIFN_IMAGE_NOMEM (-2)     /* memory ran out */
#define UNIFN_IMAGE_BADSPEC (-3)   /* the spec or output buffer is unusable */
#define UNIFN_IMAGE_TOO_LARGE (-4) /* above UNIFN_IMAGE_MAX_SIDE or UNIFN_IMAGE_MAX_PIXELS */

/* The size and channels (1 to 4) of a PNG or JPEG from its header, checked against the limits.
 * Returns 0, UNIFN_IMAGE_BAD or UNIFN_IMAGE_TOO_LARGE with a sentence in err. */
int unifn_image_info(const void* img, size_t len, int* width, int* height, int* channels, char* err,
                     size_t errlen);
/* Decodes a PNG or JPEG into 8-bit pixels, rows packed, with `channels` (1 to 4) channels
 * interleaved; free them with unifn_image_free. NULL, with a sentence in err, when unifn_image_info
 * refuses the image or it does not decode. */
uint8_t* unifn_image_decode(const void* img, size_t len, int channels, int* width, int* height,
                            char* err, size_t errlen);
void unifn_image_free(void* pixels);
/* Encodes 8-bit pixels as a PNG, handing its bytes to sink (perhaps in several calls). Returns 1,
 * or 0 when it failed. */
typedef void (*unifn_image_sink)(void* ctx, void* data, int size);
int unifn_image_write_png(unifn_image_sink sink, void* ctx, int width, int height, int channels,
                          const void* pixels, int stride_bytes);

/* The index-th comma-separated entry of a list (e.g. unifn.labels) into out. Returns its length,
 * or -1 when there is no such entry or it does not fit. */
int unifn_list_entry(const char* list, int index, char* out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* UNIFN_IMAGE_PREP_H */
