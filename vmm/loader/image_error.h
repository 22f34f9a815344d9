// The error a loader throws for an image it refuses; the message names the file and the problem.
#pragma once

#include <stdexcept>

namespace unifn::vmm {

class ImageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace unifn::vmm
