// Choosing a function's accelerator backend: its order, the daemon's accel.backends, availability;
// and unavailable pools.
#include <catch2/catch.hpp>

#include "test/support/fake_backend.h"
#include "src/runtime/accel_choice.h"
#include "src/runtime/instance_pool.h"

using namespace unifn;

namespace {

using Fake = test::FakeBackend;
using Names = std::vector<std::string>;

}  // namespace

TEST_CASE(
    "a function gets the first backend of its own list that the daemon allows and this machine "
    "has") {
  accel::BackendRegistry no_gpu(
      {std::make_shared<Fake>("cuda", false), std::make_shared<Fake>("cpu", true)});
  accel::BackendRegistry gpu(
      {std::make_shared<Fake>("cuda", true), std::make_shared<Fake>("cpu", true)});
  const Names both{"cuda", "cpu"};

  auto s = runtime::choose_accel({"cuda", "cpu"}, both, gpu);
  CHECK(s.backend->name() == "cuda");
  CHECK_FALSE(s.fell_back());
  s = runtime::choose_accel({"cpu", "cuda"}, both, gpu);  // the function's order, not the daemon's
  CHECK(s.backend->name() == "cpu");
  CHECK_FALSE(s.fell_back());

  s = runtime::choose_accel({"cuda", "cpu"}, both, no_gpu);
  CHECK(s.backend->name() == "cpu");
  CHECK(s.preferred == "cuda");
  CHECK(s.fallback == "cuda is unavailable (no cuda hardware); using cpu");

  s = runtime::choose_accel({"cuda", "cpu"}, {"cpu"}, gpu);  // the daemon rules cuda out
  CHECK(s.backend->name() == "cpu");
  CHECK(s.fallback == "cuda is disabled by accel.backends; using cpu");

  s = runtime::choose_accel({"cuda"}, both, no_gpu);
  CHECK_FALSE(s.backend);
  CHECK(s.error ==
        "none of the allowed accelerator backends can run here: cuda is unavailable (no cuda "
        "hardware)");

  s = runtime::choose_accel({"cuda"}, {"cpu"}, gpu);
  CHECK_FALSE(s.backend);
  CHECK(s.error ==
        "the function allows only cuda and the daemon's accel.backends (cpu) allows none of them");

  CHECK_FALSE(runtime::choose_accel({}, both, gpu).backend);
}

TEST_CASE("a pool that cannot run here boots nothing and answers every call 503 with the reason") {
  runtime::PoolConfig cfg;
  cfg.name = "gpu-only";
  cfg.image_path = "/nonexistent.elf";  // never loaded
  cfg.unavailable = "cuda is unavailable (no GPU)";
  std::string logged;
  cfg.log = [&](const std::string&, const std::string&, std::string_view line) { logged += line; };
  runtime::InstancePool pool(cfg);
  CHECK_THAT(logged, Catch::Contains("cannot run on this machine"));
  runtime::InvocationResult got;
  runtime::Invocation call;
  call.function = "gpu-only";
  pool.submit(call, [&](runtime::InvocationResult r) { got = std::move(r); });
  CHECK(got.outcome == runtime::CallOutcome::Unavailable);
  CHECK(got.error == "function gpu-only cannot run on this machine: cuda is unavailable (no GPU)");
  auto st = pool.status();
  CHECK(st.instances == 0);
  CHECK(st.unavailable == "cuda is unavailable (no GPU)");
}
