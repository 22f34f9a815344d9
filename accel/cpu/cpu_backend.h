// The CPU backend: OpenBLAS for SGEMM, OpenCV imgproc for the image ops. Always available.
#pragma once

#include <memory>

#include "accel/backend.h"

namespace unifn::accel {

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace unifn::accel
