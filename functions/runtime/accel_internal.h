/* What the guest's virtio-accel driver (accel.c) lends the other SDK files (model.c). */
#ifndef UNIFN_ACCEL_INTERNAL_H
#define UNIFN_ACCEL_INTERNAL_H

#include <stdint.h>

/* Maps a device answer (status byte, or -1) to vAccel's return values. */
int unifn_accel_to_vaccel(int status);
/* The device's UNIFN_ACCEL_FEATURE_* bits; 0 without a device. */
uint32_t unifn_accel_features(void);

#endif /* UNIFN_ACCEL_INTERNAL_H */
