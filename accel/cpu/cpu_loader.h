// The CPU backend as unifnd sees it: a stand-in that loads the real one (a module embedded in
// unifnd, linked with OpenCV and OpenBLAS) the first time anyone asks it more than its name.
#pragma once

#include <memory>

#include "accel/backend.h"

namespace unifn::accel {

std::unique_ptr<Backend> make_lazy_cpu_backend();

}  // namespace unifn::accel
