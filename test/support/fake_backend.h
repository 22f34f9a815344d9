// A backend that does nothing, named and available as a test says: for backend selection tests.
#pragma once

#include <string>

#include "accel/backend.h"

namespace unifn::test {

struct FakeBackend final : accel::Backend {
  std::string n;
  bool up;
  FakeBackend(std::string name, bool available) : n(std::move(name)), up(available) {}
  std::string_view name() const override { return n; }
  bool available() const override { return up; }
  std::string unavailable_reason() const override { return up ? "" : "no " + n + " hardware"; }
  accel::Result sgemm(const accel::SgemmArgs&) override { return accel::Result::success(); }
  accel::Result minmax(const accel::MinmaxArgs&) override { return accel::Result::success(); }
  accel::Result image(const accel::ImageArgs&) override { return accel::Result::success(); }
};

}  // namespace unifn::test
