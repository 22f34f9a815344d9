// load() and run() on crafted models: what a hostile or unsupported model gets back, and the checks
// on a run's inputs.
#include <catch2/catch.hpp>

#include <onnx/onnx_pb.h>

#include "accel/onnx/model.h"
#include "accel/onnx/run.h"

using namespace unifn::onnx_model;
using Catch::Matchers::Contains;

namespace {

void tensor_value(onnx::ValueInfoProto* v, const std::string& name, int type,
                  std::vector<std::int64_t> dims) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(type);
  for (auto d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
}

// A model of one node X -> op -> Y, X of shape dims (Y declared the same).
onnx::ModelProto one_node(const std::string& op, int type = onnx::TensorProto::FLOAT,
                          const std::string& domain = "", std::vector<std::int64_t> dims = {2, 3}) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  if (!domain.empty()) {
    auto* o = m.add_opset_import();
    o->set_domain(domain);
    o->set_version(1);
  }
  auto* g = m.mutable_graph();
  g->set_name("g");
  tensor_value(g->add_input(), "X", type, dims);
  tensor_value(g->add_output(), "Y", type, dims);
  auto* n = g->add_node();
  n->set_name("the_node");
  n->set_op_type(op);
  n->set_domain(domain);
  n->add_input("X");
  n->add_output("Y");
  return m;
}

std::vector<std::byte> bytes_of(const onnx::ModelProto& m) {
  std::string s = m.SerializeAsString();
  auto b = reinterpret_cast<const std::byte*>(s.data());  // Safe: std::byte may alias any object
  return {b, b + s.size()};
}

}  // namespace

TEST_CASE("A one-node model loads and runs, and its input shape is checked first", "[onnx]") {
  auto m = load(bytes_of(one_node("Relu")));
  REQUIRE(m.ok());
  std::vector<Tensor> in{Tensor::floats({2, 3}, {-1, 2, -3, 4, -5, 6})};
  auto out = run(*m.value(), in);
  REQUIRE(out.ok());
  CHECK(out.value()[0].f == std::vector<float>{0, 2, 0, 4, 0, 6});

  std::vector<Tensor> wrong{Tensor::floats({3, 2}, {1, 2, 3, 4, 5, 6})};
  auto refused = run(*m.value(), wrong);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.error(), Contains("input 'X' has shape [3, 2], where the model takes [2, 3]"));
  std::vector<Tensor> short_data{Tensor::floats({2, 3}, {1, 2})};
  CHECK_THAT(run(*m.value(), short_data).error(), Contains("but 2 values"));
}

TEST_CASE("Bytes that are too many or not a model are refused", "[onnx]") {
  std::vector<std::byte> big(kMaxModelBytes + 1);
  CHECK_THAT(load(big).error(), Contains("more than the 67108864 accepted"));
  std::vector<std::byte> junk(100, std::byte{0xff});
  CHECK_THAT(load(junk).error(), Contains("not an ONNX ModelProto"));
}

TEST_CASE("A node of an unsupported operator or domain is refused by name", "[onnx]") {
  CHECK(load(bytes_of(one_node("Erf"))).error() ==
        "node 0 'the_node' (Erf): the operator is not supported");
  CHECK_THAT(load(bytes_of(one_node("Relu", onnx::TensorProto::FLOAT, "com.example"))).error(),
             Contains("node 0 'the_node' (Relu): domain 'com.example' is not supported"));
  CHECK_THAT(load(bytes_of(one_node("Relu", onnx::TensorProto::DOUBLE))).error(),
             Contains("node 0 'the_node' (Relu): input 0 'X' has data type DOUBLE: only float32"));
}

TEST_CASE("An initializer held in an external file is refused before any file is looked at",
          "[onnx]") {
  auto m = one_node("Add");
  m.mutable_graph()->mutable_node(0)->add_input("B");
  auto* b = m.mutable_graph()->add_initializer();
  b->set_name("B");
  b->set_data_type(onnx::TensorProto::FLOAT);
  b->add_dims(3);
  b->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* e = b->add_external_data();
  e->set_key("location");
  e->set_value("/etc/passwd");
  CHECK(load(bytes_of(m)).error() ==
        "initializer 'B' refers to external data: only data held in the model is accepted");
}

TEST_CASE("A 3-D pooling or convolution window is refused at load, naming the node", "[onnx]") {
  auto m = one_node("MaxPool", onnx::TensorProto::FLOAT, "", {1, 1, 2, 2, 2});
  auto* a = m.mutable_graph()->mutable_node(0)->add_attribute();
  a->set_name("kernel_shape");
  a->set_type(onnx::AttributeProto::INTS);
  for (int k : {1, 1, 1}) a->add_ints(k);
  CHECK_THAT(load(bytes_of(m)).error(),
             Contains("(MaxPool)") && Contains("3-D spatial windows are not supported"));

  // A Conv may leave its kernel's shape to the weights: the input's rank says it then.
  auto conv = one_node("Conv", onnx::TensorProto::FLOAT, "", {1, 1, 2, 2, 2});
  conv.mutable_graph()->mutable_node(0)->add_input("W");
  tensor_value(conv.mutable_graph()->add_input(), "W", onnx::TensorProto::FLOAT, {1, 1, 1, 1, 1});
  CHECK(load(bytes_of(conv)).error() ==
        "node 0 'the_node' (Conv): 3-D spatial windows are not supported, only 1-D and 2-D");
}

TEST_CASE("A rank that an operator cannot take is refused before ONNX's shape inference indexes it",
          "[onnx]") {
  // Found by fuzz_onnx: Gemm's inference before opset 7 reads B's second dim without checking that
  // B has one, and libonnx 1.12 crashes on a rank-1 B.
  auto m = one_node("Gemm");
  m.mutable_opset_import(0)->set_version(6);
  auto* n = m.mutable_graph()->mutable_node(0);
  n->add_input("B");
  n->add_input("C");
  tensor_value(m.mutable_graph()->add_input(), "B", onnx::TensorProto::FLOAT, {3});
  tensor_value(m.mutable_graph()->add_input(), "C", onnx::TensorProto::FLOAT, {3});
  CHECK(load(bytes_of(m)).error() == "node 0 'the_node' (Gemm): B has rank 1, not 2");
}

TEST_CASE("Values that crash libonnx's shape inference are refused before it runs", "[onnx]") {
  // Each found by fuzz_onnx as a crash inside libonnx 1.12.
  SECTION("a zero stride, which its Conv and pool inference divides by") {
    auto m = one_node("MaxPool", onnx::TensorProto::FLOAT, "", {1, 1, 4, 4});
    auto* n = m.mutable_graph()->mutable_node(0);
    for (const char* name : {"kernel_shape", "strides"}) {
      auto* a = n->add_attribute();
      a->set_name(name);
      a->set_type(onnx::AttributeProto::INTS);
      a->add_ints(name[0] == 'k' ? 2 : 0);
      a->add_ints(2);
    }
    CHECK(load(bytes_of(m)).error() == "node 0 'the_node' (MaxPool): strides has a value below 1");
  }
  SECTION("a map where an operator takes a tensor") {
    auto m = one_node("Relu");
    auto* map = m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_map_type();
    map->set_key_type(onnx::TensorProto::INT64);
    map->mutable_value_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    CHECK(load(bytes_of(m)).error() ==
          "node 0 'the_node' (Relu): input 0 'X' is not a tensor (a sequence, map or optional), "
          "which is not supported");
  }
  SECTION("a graph output named as an input, declared with another rank") {
    auto m = one_node("Relu");
    tensor_value(m.mutable_graph()->add_output(), "X", onnx::TensorProto::FLOAT, {6});
    CHECK(load(bytes_of(m)).error() == "'X' is declared with rank 1 and with rank 2");
  }
}

TEST_CASE("A graph of more nodes than the cap is refused before the ONNX library looks at it",
          "[onnx]") {
  auto m = one_node("Relu");
  auto* g = m.mutable_graph();
  g->mutable_node(0)->set_output(0, "v0");
  for (std::size_t i = 0; i < kMaxNodes; ++i) {
    auto* n = g->add_node();
    n->set_op_type("Identity");
    n->add_input("v" + std::to_string(i));
    n->add_output(i + 1 == kMaxNodes ? "Y" : "v" + std::to_string(i + 1));
  }
  CHECK(load(bytes_of(m)).error() == "the graph has 10001 nodes, more than the 10000 accepted");
  g->mutable_node()->RemoveLast();
  g->mutable_node(g->node_size() - 1)->set_output(0, "Y");
  CHECK(load(bytes_of(m)).ok());
}

TEST_CASE("A named size (a dynamic batch) takes any value, the same in every input", "[onnx]") {
  auto m = one_node("Add");
  auto* g = m.mutable_graph();
  g->mutable_node(0)->add_input("Z");
  tensor_value(g->add_input(), "Z", onnx::TensorProto::FLOAT, {3});
  for (auto* v : {g->mutable_input(0), g->mutable_input(1), g->mutable_output(0)}) {
    auto* shape = v->mutable_type()->mutable_tensor_type()->mutable_shape();
    shape->Clear();
    shape->add_dim()->set_dim_param("batch");
    shape->add_dim()->set_dim_value(3);
  }
  auto model = load(bytes_of(m));
  REQUIRE(model.ok());
  for (std::int64_t batch : {1, 4}) {
    std::vector<Tensor> in{
        Tensor::floats({batch, 3}, std::vector<float>(static_cast<std::size_t>(batch * 3), 1)),
        Tensor::floats({batch, 3}, std::vector<float>(static_cast<std::size_t>(batch * 3), 2))};
    auto out = run(*model.value(), in, RunOptions{2});
    REQUIRE(out.ok());
    CHECK(out.value()[0].dims == std::vector<std::int64_t>{batch, 3});
    CHECK(out.value()[0].f == std::vector<float>(static_cast<std::size_t>(batch * 3), 3));
  }
  std::vector<Tensor> mixed{Tensor::floats({2, 3}, std::vector<float>(6)),
                            Tensor::floats({3, 3}, std::vector<float>(9))};
  CHECK(run(*model.value(), mixed).error() ==
        "input 'Z' has size 3 for 'batch', which another input gives as 2");
}
