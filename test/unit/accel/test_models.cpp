// Models through the virtio-accel device on hand-made rings, on the real CPU backend (ONNX library,
// oneDNN): registration with its answers and refusals, runs checked before they start, and the
// models' part of a snapshot, restored in this process and as after a daemon restart.
#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <onnx/onnx_pb.h>

#include "accel/cpu/cpu_backend.h"
#ifdef UNIFN_HAVE_CUDA
#include "accel/cuda/cuda_backend.h"
#endif
#include "test/support/ring_harness.h"

using namespace unifn;
using test::A;
using test::Harness;

namespace {

// y = Relu(x W + b), x [1, 4], W [4, 3], b [3], with metadata a guest reads; `op` replaces Relu
// (an operator the executor lacks makes a model it must refuse).
std::string tiny_model(const std::string& op = "Relu") {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* meta = m.add_metadata_props();
  meta->set_key("unifn.labels");
  meta->set_value("cat,dog,bird");
  auto* g = m.mutable_graph();
  g->set_name("tiny");
  auto value = [](onnx::ValueInfoProto* v, const char* name, std::vector<std::int64_t> dims) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
  };
  value(g->add_input(), "x", {1, 4});
  value(g->add_output(), "y", {1, 3});
  auto init = [g](const char* name, std::vector<std::int64_t> dims, std::vector<float> v) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) t->add_dims(d);
    for (float f : v) t->add_float_data(f);
  };
  init("W", {4, 3}, {1, 0, -1, 0, 1, 2, 2, 0, 1, -1, 1, 0});
  init("b", {3}, {0.5f, -10, 0});
  auto* mm = g->add_node();
  mm->set_op_type("MatMul");
  mm->add_input("x");
  mm->add_input("W");
  mm->add_output("xw");
  auto* add = g->add_node();
  add->set_op_type("Add");
  add->add_input("xw");
  add->add_input("b");
  add->add_output("z");
  auto* act = g->add_node();
  act->set_name("act");
  act->set_op_type(op);
  act->add_input("z");
  act->add_output("y");
  return m.SerializeAsString();
}

// What the model computes, by hand.
std::vector<float> expected(const std::vector<float>& x) {
  const float w[4][3] = {{1, 0, -1}, {0, 1, 2}, {2, 0, 1}, {-1, 1, 0}};
  const float b[3] = {0.5f, -10, 0};
  std::vector<float> y(3);
  for (int j = 0; j < 3; ++j) {
    float s = b[j];
    for (int i = 0; i < 4; ++i) s += x[static_cast<std::size_t>(i)] * w[i][j];
    y[static_cast<std::size_t>(j)] = std::max(0.0f, s);
  }
  return y;
}

struct Registered {
  std::uint32_t status = 0xAA;
  unifn_accel_model_io io{};
  std::string metadata;
  std::uint64_t bytes_at = 0;
};

Registered register_model(Harness& h, std::uint32_t sess, const std::string& model,
                          std::uint32_t meta_len = 256) {
  Registered r;
  std::vector<std::uint8_t> bytes(model.begin(), model.end());
  r.bytes_at = h.put_vec(bytes);
  const auto io = h.alloc(sizeof(unifn_accel_model_io), 0xEE);
  const auto meta = h.alloc(meta_len, 0xEE);
  std::vector<A> writes{{io, sizeof(unifn_accel_model_io), UNIFN_ACCEL_ARG_STRUCT}};
  if (meta_len) writes.push_back({meta, meta_len});
  r.status = h.request(UNIFN_ACCEL_CMD_MODEL_REGISTER, sess, 0,
                       {{r.bytes_at, static_cast<std::uint32_t>(bytes.size())}}, writes)
                 .status;
  r.io = h.get<unifn_accel_model_io>(io);
  if (meta_len) {
    auto m = h.get_vec<char>(meta, meta_len);
    r.metadata.assign(m.data(), strnlen(m.data(), m.size()));
  }
  return r;
}

struct Ran {
  std::uint8_t status = 0xAA;
  unifn_accel_model_io io{};
  std::vector<float> y;
};

Ran run_model(Harness& h, std::uint32_t sess, std::uint32_t model, std::vector<float> x,
              std::vector<std::int64_t> dims = {1, 4}, std::uint32_t out_floats = 3) {
  unifn_accel_model_io in{};
  in.model_id = model;
  in.nr_inputs = 1;
  in.inputs[0].type = UNIFN_ACCEL_ARG_FLOAT32;
  in.inputs[0].rank = static_cast<std::uint32_t>(dims.size());
  for (std::size_t i = 0; i < dims.size() && i < UNIFN_ACCEL_MODEL_MAX_RANK; ++i)
    in.inputs[0].dims[i] = dims[i];
  const auto io_in = h.put(in);
  const auto x_at = h.put_vec(x);
  const auto io_out = h.alloc(sizeof(unifn_accel_model_io), 0xEE);
  const auto y_at = h.alloc(out_floats * 4, 0xEE);
  Ran r;
  r.status = h.request(UNIFN_ACCEL_CMD_DO_OP, sess, UNIFN_ACCEL_OP_MODEL_RUN,
                       {{io_in, sizeof in, UNIFN_ACCEL_ARG_STRUCT},
                        {x_at, static_cast<std::uint32_t>(x.size() * 4), UNIFN_ACCEL_ARG_FLOAT32}},
                       {{io_out, sizeof in, UNIFN_ACCEL_ARG_STRUCT},
                        {y_at, out_floats * 4, UNIFN_ACCEL_ARG_FLOAT32}})
                 .status;
  r.io = h.get<unifn_accel_model_io>(io_out);
  r.y = h.get_vec<float>(y_at, out_floats);
  return r;
}

bool untouched(const std::vector<float>& v) {
  std::uint32_t bits;
  for (float f : v) {
    std::memcpy(&bits, &f, 4);
    if (bits != 0xEEEEEEEEu) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("a model registers once, says what it takes and gives, and runs to the right answer") {
  Harness h(accel::make_cpu_backend());
  h.init_driver();
  CHECK((h.rd(0x100 + offsetof(unifn_accel_config, features)) & UNIFN_ACCEL_FEATURE_MODELS) != 0);
  const auto sess = h.open_session();
  const auto reg = register_model(h, sess, tiny_model());
  INFO(h.dev.last_error());
  REQUIRE(reg.status == UNIFN_ACCEL_OK);
  CHECK(reg.io.model_id != 0);
  CHECK(reg.io.nr_inputs == 1);
  CHECK(reg.io.nr_outputs == 1);
  CHECK(reg.io.inputs[0].type == UNIFN_ACCEL_ARG_FLOAT32);
  CHECK(reg.io.inputs[0].rank == 2);
  CHECK(reg.io.inputs[0].dims[1] == 4);
  CHECK(reg.io.outputs[0].dims[1] == 3);
  CHECK(reg.metadata == "unifn.labels=cat,dog,bird\n");

  for (const std::vector<float>& x :
       {std::vector<float>{1, 2, 3, 4}, {-1, 0.5f, 0, 7}, {0, 0, 0, 0}}) {
    const auto ran = run_model(h, sess, reg.io.model_id, x);
    REQUIRE(ran.status == UNIFN_ACCEL_OK);
    CHECK(ran.io.nr_outputs == 1);
    CHECK(ran.io.outputs[0].rank == 2);
    CHECK(ran.io.outputs[0].dims[0] == 1);
    CHECK(ran.io.outputs[0].dims[1] == 3);
    const auto want = expected(x);
    for (std::size_t j = 0; j < 3; ++j) CHECK(ran.y[j] == Approx(want[j]).margin(1e-5));
  }
  CHECK(h.dev.models().size() == 1);
}

TEST_CASE(
    "a run whose tensors disagree with the model is refused before it runs and writes "
    "nothing") {
  Harness h(accel::make_cpu_backend());
  h.init_driver();
  const auto sess = h.open_session();
  const auto id = register_model(h, sess, tiny_model()).io.model_id;
  SECTION("a shape the model does not take") {
    const auto r = run_model(h, sess, id, {1, 2, 3, 4, 5, 6, 7, 8}, {2, 4});
    CHECK(r.status == UNIFN_ACCEL_ERR);
    CHECK_THAT(h.dev.last_error(), Catch::Contains("input 'x' has shape [2, 4]"));
    CHECK(untouched(r.y));
  }
  SECTION("a buffer shorter than its shape") {
    const auto r = run_model(h, sess, id, {1, 2, 3}, {1, 4});
    CHECK(r.status == UNIFN_ACCEL_BADMSG);
    CHECK_THAT(h.dev.last_error(), Catch::Contains("its buffer is 12 bytes"));
    CHECK(untouched(r.y));
  }
  SECTION("a negative or huge size") {
    CHECK(run_model(h, sess, id, {1, 2, 3, 4}, {-1, -4}).status == UNIFN_ACCEL_BADMSG);
    CHECK(run_model(h, sess, id, {1, 2, 3, 4}, {1 << 30, 1 << 30}).status == UNIFN_ACCEL_BADMSG);
    CHECK(run_model(h, sess, id, {1, 2, 3, 4}, {1, 2, 3, 4, 5, 6, 7, 8, 9}).status ==
          UNIFN_ACCEL_BADMSG);
  }
  SECTION("an output buffer too small for the output") {
    const auto r = run_model(h, sess, id, {1, 2, 3, 4}, {1, 4}, 2);
    CHECK(r.status == UNIFN_ACCEL_ERR);
    CHECK_THAT(h.dev.last_error(), Catch::Contains("output 0 has shape [1, 3] (12 bytes)"));
    CHECK(untouched(r.y));
  }
  SECTION("a model of another session, or none") {
    const auto other = h.open_session();
    CHECK(run_model(h, other, id, {1, 2, 3, 4}).status == UNIFN_ACCEL_ERR);
    CHECK(run_model(h, sess, id + 100, {1, 2, 3, 4}).status == UNIFN_ACCEL_ERR);
    CHECK_THAT(h.dev.last_error(), Catch::Contains("no model"));
  }
  SECTION("destroying the session unregisters its models") {
    CHECK(h.request(UNIFN_ACCEL_CMD_DESTROY_SESSION, sess, 0).status == UNIFN_ACCEL_OK);
    CHECK(h.dev.models().size() == 0);
  }
  SECTION("unregistering") {
    const auto id_at = h.put(id);
    CHECK(h.request(UNIFN_ACCEL_CMD_MODEL_UNREGISTER, sess, 0, {{id_at, 4}}).status ==
          UNIFN_ACCEL_OK);
    CHECK(run_model(h, sess, id, {1, 2, 3, 4}).status == UNIFN_ACCEL_ERR);
  }
  // Whatever was refused, the device still serves.
  if (h.dev.models().size() == 1) CHECK(run_model(h, sess, id, {1, 2, 3, 4}).status == 0);
}

TEST_CASE("models the backends cannot run are refused at registration, with the reason") {
  Harness h(accel::make_cpu_backend());
  h.init_driver();
  const auto sess = h.open_session();
  SECTION("not ONNX at all") {
    CHECK(register_model(h, sess, std::string(300, '\xff')).status == UNIFN_ACCEL_ERR);
    CHECK_THAT(h.dev.last_error(), Catch::Contains("protobuf parsing failed"));
  }
  SECTION("an operator the executor lacks, named with its node") {
    CHECK(register_model(h, sess, tiny_model("Cos")).status == UNIFN_ACCEL_ERR);
    CHECK_THAT(h.dev.last_error(), Catch::Contains("'act' (Cos)"));
  }
  SECTION("metadata that does not fit the guest's buffer") {
    const auto r = register_model(h, sess, tiny_model(), 8);
    CHECK(r.status == UNIFN_ACCEL_BADMSG);
    CHECK_THAT(h.dev.last_error(), Catch::Contains("metadata needs 27 bytes"));
  }
  SECTION("without a session") {
    CHECK(register_model(h, sess + 7, tiny_model()).status == UNIFN_ACCEL_INVSESS);
  }
  CHECK(h.dev.models().size() == 0);
  CHECK(register_model(h, sess, tiny_model()).status == UNIFN_ACCEL_OK);
}

namespace {

// A second device over a copy of the first one's guest memory, restored from its saved state, as
// a restored snapshot is: `backend` is this process's (a model cache that knows the model) or a new
// one (as after a daemon restart).
std::unique_ptr<Harness> restored(Harness& from, std::shared_ptr<accel::Backend> backend) {
  auto to = std::make_unique<Harness>(std::move(backend));
  const auto ram = from.mem.span(vmm::GuestAddr(0), from.mem.size(), "test copy");
  to->mem.write(vmm::GuestAddr(0), ram);
  const auto state = from.dev.save();
  REQUIRE_FALSE(to->dev.check(state));
  to->dev.restore(state);
  to->avail_idx = from.avail_idx;
  to->next_free = from.next_free;
  to->request_id = from.request_id;
  return to;
}

}  // namespace

TEST_CASE(
    "a snapshot keeps its models: found again by digest, or loaded again from the guest's "
    "copy after a restart") {
  std::shared_ptr<accel::Backend> cpu = accel::make_cpu_backend();
  Harness h(cpu);
  h.init_driver();
  const auto sess = h.open_session();
  const auto reg = register_model(h, sess, tiny_model());
  REQUIRE(reg.status == UNIFN_ACCEL_OK);
  const std::vector<float> x{3, -2, 1, 0.25f};

  SECTION("in the same process") {
    auto r = restored(h, cpu);
    const auto ran = run_model(*r, sess, reg.io.model_id, x);
    REQUIRE(ran.status == UNIFN_ACCEL_OK);
    CHECK(ran.y[0] == Approx(expected(x)[0]));
  }
  SECTION("after a restart, from the guest's unchanged copy") {
    auto r = restored(h, accel::make_cpu_backend());
    const auto ran = run_model(*r, sess, reg.io.model_id, x);
    INFO(r->dev.last_error());
    REQUIRE(ran.status == UNIFN_ACCEL_OK);
    CHECK(ran.y[2] == Approx(expected(x)[2]));
  }
  SECTION("after a restart, refused when the guest changed its copy") {
    auto r = restored(h, accel::make_cpu_backend());
    r->mem.write_obj<std::uint8_t>(
        vmm::GuestAddr(reg.bytes_at + 20),
        static_cast<std::uint8_t>(r->get<std::uint8_t>(reg.bytes_at + 20) ^ 1));
    const auto ran = run_model(*r, sess, reg.io.model_id, x);
    CHECK(ran.status == UNIFN_ACCEL_ERR);
    CHECK(untouched(ran.y));
    INFO(r->dev.last_error());
    const bool why = r->dev.last_error().find("the guest changed them") != std::string::npos ||
                     r->dev.last_error().find("cannot be loaded again") != std::string::npos;
    CHECK(why);
  }
}

TEST_CASE("the models' state round-trips and refuses what cannot be") {
  accel::AccelState s;
  s.next_session = 3;
  s.sessions = {{1, 0}, {2, 5}};
  s.models.next_model = 4;
  accel::ModelRecord m;
  m.session = 2;
  m.digest[0] = 0xab;
  m.addr = 0x40000;
  m.len = 1234;
  s.models.models = {{3, m}};
  CHECK(vmm::decode<accel::AccelState>(vmm::encode(s), "test") == s);

  auto orphan = s;
  orphan.models.models[3].session = 9;
  CHECK_THROWS_WITH(vmm::decode<accel::AccelState>(vmm::encode(orphan), "test"),
                    Catch::Contains("session 9, which is not open"));
  auto huge = s;
  huge.models.models[3].len = UNIFN_ACCEL_MODEL_MAX_BYTES + 1;
  CHECK_THROWS_WITH(vmm::decode<accel::AccelState>(vmm::encode(huge), "test"),
                    Catch::Contains("impossible size"));
}

#ifdef UNIFN_HAVE_CUDA
TEST_CASE("the CUDA backend runs models only with a GPU, and its device's features say so") {
  std::shared_ptr<accel::Backend> cpu = accel::make_cpu_backend();
  auto cuda = std::shared_ptr<accel::Backend>(accel::make_cuda_backend(
      {}, {cpu, [](const accel::ModelRunArgs&) { return accel::Result::success(); }}));
  CHECK(cuda->runs_models() == cuda->available());
  CHECK_FALSE(accel::make_cuda_backend()->runs_models());  // no parser, no runner: no models
  if (cuda->available()) return;                           // test/gpu runs the models on it
  INFO(cuda->unavailable_reason());
  Harness h(cuda);
  h.init_driver();
  CHECK((h.rd(0x100 + offsetof(unifn_accel_config, features)) & UNIFN_ACCEL_FEATURE_MODELS) == 0);
  const auto sess = h.open_session();
  CHECK(register_model(h, sess, tiny_model()).status == UNIFN_ACCEL_NOTSUPP);
  CHECK_THAT(h.dev.last_error(), Catch::Contains("does not run models"));
}
#endif
