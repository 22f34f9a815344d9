// A Fashion-MNIST-sized CNN (Conv, Relu, MaxPool, Conv, Relu, MaxPool, Flatten, Gemm, Relu, Gemm,
// Softmax) built here with seeded weights: run() against plain loops at real sizes, where the node
// tests are tiny, and the load and run times reported.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <onnx/onnx_pb.h>

#include "accel/onnx/model.h"
#include "accel/onnx/run.h"

using namespace unifn::onnx_model;

namespace {

std::mt19937 rng(12);

std::vector<float> random_floats(std::size_t n, float scale) {
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

struct Net {
  std::vector<float> w1 = random_floats(32 * 1 * 3 * 3, 0.5f), b1 = random_floats(32, 0.1f);
  std::vector<float> w2 = random_floats(64 * 32 * 3 * 3, 0.1f), b2 = random_floats(64, 0.1f);
  std::vector<float> w3 = random_floats(128 * 64 * 5 * 5, 0.03f),
                     b3 = random_floats(128, 0.1f);  // [out, in]: transB
  std::vector<float> w4 = random_floats(10 * 128, 0.1f), b4 = random_floats(10, 0.1f);
};

void initializer(onnx::GraphProto* g, const std::string& name, std::vector<std::int64_t> dims,
                 const std::vector<float>& v) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (auto d : dims) t->add_dims(d);
  t->set_raw_data(std::string(reinterpret_cast<const char*>(v.data()),
                              v.size() * sizeof(float)));  // Safe: bytes of floats
}

onnx::NodeProto* node(onnx::GraphProto* g, const std::string& op, std::vector<std::string> in,
                      const std::string& out) {
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(out);
  for (auto& i : in) n->add_input(i);
  n->add_output(out);
  return n;
}

void ints(onnx::NodeProto* n, const std::string& name, std::vector<std::int64_t> v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (auto x : v) a->add_ints(x);
}

void one_int(onnx::NodeProto* n, const std::string& name, std::int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

std::string model_bytes(const Net& net, std::int64_t batch) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("cnn");
  auto value = [](onnx::ValueInfoProto* v, const char* name, std::vector<std::int64_t> dims) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
  };
  value(g->add_input(), "image", {batch, 1, 28, 28});
  value(g->add_output(), "probs", {batch, 10});
  initializer(g, "w1", {32, 1, 3, 3}, net.w1);
  initializer(g, "b1", {32}, net.b1);
  initializer(g, "w2", {64, 32, 3, 3}, net.w2);
  initializer(g, "b2", {64}, net.b2);
  initializer(g, "w3", {128, 64 * 5 * 5}, net.w3);
  initializer(g, "b3", {128}, net.b3);
  initializer(g, "w4", {10, 128}, net.w4);
  initializer(g, "b4", {10}, net.b4);
  node(g, "Conv", {"image", "w1", "b1"}, "c1");  // 26x26
  node(g, "Relu", {"c1"}, "r1");
  ints(node(g, "MaxPool", {"r1"}, "p1"), "kernel_shape",
       {2, 2});  // 13x13 (strides default 1: set below)
  ints(g->mutable_node(2), "strides", {2, 2});
  node(g, "Conv", {"p1", "w2", "b2"}, "c2");  // 11x11
  node(g, "Relu", {"c2"}, "r2");
  auto* p2 = node(g, "MaxPool", {"r2"}, "p2");  // 5x5
  ints(p2, "kernel_shape", {2, 2});
  ints(p2, "strides", {2, 2});
  node(g, "Flatten", {"p2"}, "f");
  one_int(node(g, "Gemm", {"f", "w3", "b3"}, "g1"), "transB", 1);
  node(g, "Relu", {"g1"}, "r3");
  one_int(node(g, "Gemm", {"r3", "w4", "b4"}, "g2"), "transB", 1);
  node(g, "Softmax", {"g2"}, "probs");
  return m.SerializeAsString();
}

// The same network in plain loops, one image at a time.
std::vector<float> conv_relu(const std::vector<float>& x, int c, int h, const std::vector<float>& w,
                             const std::vector<float>& b, int m) {
  int o = h - 2;
  std::vector<float> y(static_cast<std::size_t>(m * o * o));
  for (int f = 0; f < m; ++f)
    for (int i = 0; i < o; ++i)
      for (int j = 0; j < o; ++j) {
        double s = b[f];
        for (int k = 0; k < c; ++k)
          for (int u = 0; u < 3; ++u)
            for (int v = 0; v < 3; ++v)
              s += double(x[(k * h + i + u) * h + j + v]) * w[((f * c + k) * 3 + u) * 3 + v];
        y[(f * o + i) * o + j] = std::max(0.f, static_cast<float>(s));
      }
  return y;
}

std::vector<float> max_pool(const std::vector<float>& x, int c, int h) {
  int o = h / 2;
  std::vector<float> y(static_cast<std::size_t>(c * o * o));
  for (int k = 0; k < c; ++k)
    for (int i = 0; i < o; ++i)
      for (int j = 0; j < o; ++j) {
        float m = -INFINITY;
        for (int u = 0; u < 2; ++u)
          for (int v = 0; v < 2; ++v) m = std::max(m, x[(k * h + 2 * i + u) * h + 2 * j + v]);
        y[(k * o + i) * o + j] = m;
      }
  return y;
}

std::vector<float> dense(const std::vector<float>& x, const std::vector<float>& w,
                         const std::vector<float>& b, int out, bool relu) {
  std::vector<float> y(static_cast<std::size_t>(out));
  auto in = x.size();
  for (int o = 0; o < out; ++o) {
    double s = b[o];
    for (std::size_t i = 0; i < in; ++i) s += double(x[i]) * w[o * in + i];
    y[o] = relu ? std::max(0.f, static_cast<float>(s)) : static_cast<float>(s);
  }
  return y;
}

std::vector<float> reference(const Net& n, const std::vector<float>& image) {
  auto a = max_pool(conv_relu(image, 1, 28, n.w1, n.b1, 32), 32, 26);
  auto b = max_pool(conv_relu(a, 32, 13, n.w2, n.b2, 64), 64, 11);
  auto z = dense(dense(b, n.w3, n.b3, 128, true), n.w4, n.b4, 10, false);
  float top = *std::max_element(z.begin(), z.end());
  double sum = 0;
  for (auto& v : z) sum += (v = std::exp(v - top));
  for (auto& v : z) v = static_cast<float>(v / sum);
  return z;
}

double median_us(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

TEST_CASE(
    "A small CNN runs as plain loops compute it, batch 1 and 8, and how long load and run take",
    "[onnx]") {
  Net net;
  for (std::int64_t batch : {1, 8}) {
    std::string bytes = model_bytes(net, batch);
    auto span = std::as_bytes(std::span(bytes.data(), bytes.size()));
    std::vector<double> load_us;
    for (int k = 0; k < 20; ++k) {
      auto t0 = std::chrono::steady_clock::now();
      auto m = load(span);
      load_us.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      REQUIRE(m.ok());
    }
    auto model = load(span);
    REQUIRE(model.ok());
    std::vector<Tensor> in{Tensor::floats(
        {batch, 1, 28, 28}, random_floats(static_cast<std::size_t>(batch * 784), 1.f))};
    auto out = run(*model.value(), in);
    REQUIRE(out.ok());
    REQUIRE(out.value()[0].dims == std::vector<std::int64_t>{batch, 10});
    for (std::int64_t b = 0; b < batch; ++b) {
      std::vector<float> image(in[0].f.begin() + b * 784, in[0].f.begin() + (b + 1) * 784);
      auto want = reference(net, image);
      for (int k = 0; k < 10; ++k) {
        INFO("batch " << batch << " image " << b << " class " << k);
        CHECK(out.value()[0].f[static_cast<std::size_t>(b * 10 + k)] ==
              Approx(want[static_cast<std::size_t>(k)]).margin(1e-5).epsilon(1e-4));
      }
    }
    std::vector<double> run_us;
    for (int k = 0; k < 200; ++k) {
      auto t0 = std::chrono::steady_clock::now();
      auto r = run(*model.value(), in);
      run_us.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      REQUIRE(r.ok());
    }
    WARN(fmt::format("CNN, batch {}: model {} bytes, load {:.0f} us, run {:.0f} us (medians)",
                     batch, bytes.size(), median_us(load_us), median_us(run_us)));
  }
}
