// Names of statuses, image ops and model digests, for messages and metrics.
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

std::string to_hex(const ModelDigest& d) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(d.size() * 2);
  for (auto b : d) {
    s += kHex[b >> 4];
    s += kHex[b & 15];
  }
  return s;
}

}  // namespace unifn::accel
