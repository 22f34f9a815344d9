// The operators the executor supports, by ONNX name, with the oldest version each implements.
#pragma once

#include <string_view>

#include "accel/onnx/model.h"

namespace unifn::onnx_model {

struct OpInfo {
  Op op;
  const char* name;
  int oldest;  // the oldest version of the operator with the semantics implemented here
  const char* why_not_older;
};

// The supported operator of that ONNX name (default domain), or null.
const OpInfo* op_named(std::string_view name);

}  // namespace unifn::onnx_model
