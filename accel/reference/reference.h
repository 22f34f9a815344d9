// Plain C++ versions of every accelerator op: the yardstick the CPU and CUDA backends are checked
// against.
#pragma once

#include <memory>
#include <vector>

#include "accel/backend.h"

namespace unifn::accel::reference {

// Each follows the semantics in accel_abi.h and OpenCV's conventions (BT.601 fixed-point gray,
// replicated borders, half-pixel bilinear centres), in double precision, with no library at all.
void sgemm(const SgemmArgs& a);
void minmax(const MinmaxArgs& a);
void image(const ImageArgs& a);

// The 1-D Gaussian weights GaussianBlur uses for this ksize and sigma (OpenCV's rules: fixed
// tables for ksize <= 7 with sigma 0, else sampled and normalised); shared with the CUDA backend.
std::vector<float> gaussian_kernel(int ksize, double sigma);

// A backend named "reference" that runs the functions above (slow; for tests and fuzzing).
std::unique_ptr<Backend> make_backend();

}  // namespace unifn::accel::reference
