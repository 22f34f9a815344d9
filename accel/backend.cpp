// Names of statuses and image ops, for messages and metrics.
#include "accel/backend.h"

namespace unifn::accel {

std::string_view to_string(Status s) {
  switch (s) {
    case Status::Ok:
      return "ok";
    case Status::Error:
      return "backend error";
    case Status::BadMessage:
      return "malformed request";
    case Status::NotSupported:
      return "not supported";
    case Status::InvalidSession:
      return "invalid session";
  }
  return "unknown status";
}

std::string_view to_string(ImageOp op) {
  switch (op) {
    case ImageOp::Grayscale:
      return "grayscale";
    case ImageOp::GaussianBlur:
      return "gaussian-blur";
    case ImageOp::Sobel:
      return "sobel";
    case ImageOp::Resize:
      return "resize";
  }
  return "unknown-image-op";
}

}  // namespace unifn::accel
