// The rank pass before shape inference: each supported operator's rules on its inputs' ranks and on
// the attributes sized by them, over the ranks the model declares and those that follow from them.
#include "accel/onnx/rank_check.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "accel/onnx/model.h"

namespace unifn::onnx_model {

namespace {

constexpr int kUnknown = -1;

struct Refused {
  std::string why;
};

class Ranks {
 public:
  // Throws the sentence that refuses the graph.
  explicit Ranks(const onnx::GraphProto& g) {
    for (const auto& t : g.initializer()) {
      rank_[t.name()] = t.dims_size();
      if (t.dims_size() == 1) length_[t.name()] = t.dims(0);
    }
    // Values of other kinds than tensors: shape inference reads them as tensors without checking.
    for (const auto& vi : g.input())
      if (!rank_.contains(vi.name()) && !vi.type().has_tensor_type()) not_tensor_.insert(vi.name());
    for (const auto& vi : g.input())
      if (!rank_.contains(vi.name()) && vi.type().has_tensor_type() &&
          vi.type().tensor_type().has_shape())
        rank_[vi.name()] = vi.type().tensor_type().shape().dim_size();
    // The ranks the model declares for values it computes (graph outputs, value_info): one per
    // name, agreeing with an input's of the same name. Shape inference merges them into what it
    // infers, and libonnx 1.12 crashes on a graph output named as an input of another rank.
    for (const auto* list : {&g.output(), &g.value_info()})
      for (const auto& vi : *list) {
        if (vi.has_type() && !vi.type().has_tensor_type()) declared_not_tensor_.insert(vi.name());
        if (!vi.type().tensor_type().has_shape()) continue;
        int r = vi.type().tensor_type().shape().dim_size();
        auto [it, fresh] = declared_.emplace(vi.name(), r);
        auto known = rank_.find(vi.name());
        if ((!fresh && it->second != r) || (known != rank_.end() && known->second != r))
          throw Refused{fmt::format("'{}' is declared with rank {} and with rank {}", vi.name(), r,
                                    !fresh && it->second != r ? it->second : known->second)};
      }
  }

  bool defined(const std::string& name) const {
    return not_tensor_.contains(name) || rank_.contains(name);
  }

  // Throws the sentence that refuses the node.
  void node(const onnx::NodeProto& n, std::size_t index) {
    who_ = node_label(index, n.name(), n.op_type());
    n_ = &n;
    for (int k = 0; k < n.input_size(); ++k)
      if (not_tensor_.contains(n.input(k)))
        refuse(fmt::format(
            "input {} '{}' is not a tensor (a sequence, map or optional), which is not supported",
            k, n.input(k)));
    int out = rule(n.op_type());
    for (int k = 0; k < n.output_size(); ++k) {  // the rules give the first output's rank
      const std::string& o = n.output(k);
      if (declared_not_tensor_.erase(o))
        refuse(fmt::format(
            "output '{}' is declared as a sequence, map or optional, which is not supported", o));
      if (k > 0) out = kUnknown;
      auto d = declared_.find(o);
      if (d != declared_.end() && out != kUnknown && d->second != out)
        refuse(fmt::format("output '{}' is declared with rank {}, where the operator gives rank {}",
                           o, d->second, out));
      rank_[o] = out != kUnknown || d == declared_.end() ? out : d->second;
    }
    if (n.op_type() == "Constant") {
      for (const auto& a : n.attribute())
        if (a.name() == "value" && a.t().dims_size() == 1)
          length_[n.output(0)] = a.t().dims(0);
        else if (a.name() == "value_ints")
          length_[n.output(0)] = a.ints_size();
    }
  }

 private:
  int in(int k) const {
    if (k >= n_->input_size() || n_->input(k).empty()) return kUnknown;
    auto it = rank_.find(n_->input(k));
    return it == rank_.end() ? kUnknown : it->second;
  }
  const onnx::AttributeProto* attr(const char* name) const {
    for (const auto& a : n_->attribute())
      if (a.name() == name) return &a;
    return nullptr;
  }
  [[noreturn]] void refuse(const std::string& why) const {
    throw Refused{fmt::format("{}: {}", who_, why)};
  }
  void need(bool ok, const std::string& why) const {
    if (!ok) refuse(why);
  }
  void axis_within(const char* name, std::int64_t def, int r, bool inclusive) const {
    auto a = attr(name);
    std::int64_t axis = a ? a->i() : def;
    if (r != kUnknown)
      need(axis >= -r && (axis < r || (inclusive && axis == r)),
           fmt::format("{} {} is outside a rank-{} input", name, axis, r));
  }
  void sized(const char* name, int want) const {
    if (auto a = attr(name); a && want >= 0)
      need(a->ints_size() == want,
           fmt::format("{} has {} values where the input's rank asks for {}", name, a->ints_size(),
                       want));
  }

  void at_least(const char* name, std::int64_t low) const {
    if (auto a = attr(name))
      for (auto v : a->ints()) need(v >= low, fmt::format("{} has a value below {}", name, low));
  }

  int same_as_input() const { return in(0); }

  int window(bool conv) {
    int r = in(0);
    if (r != kUnknown)
      need(r >= 3, fmt::format("input 0 has rank {}, where the operator needs at least 3", r));
    if (conv && in(1) != kUnknown && r != kUnknown)
      need(in(1) == r, fmt::format("weights of rank {} do not fit an input of rank {}", in(1), r));
    int spatial = r == kUnknown ? (conv && in(1) != kUnknown ? in(1) - 2 : kUnknown) : r - 2;
    if (auto k = attr("kernel_shape")) spatial = spatial == kUnknown ? k->ints_size() : spatial;
    sized("kernel_shape", spatial);
    sized("strides", spatial);
    sized("dilations", spatial);
    sized("pads", spatial == kUnknown ? kUnknown : 2 * spatial);
    if (conv && in(2) != kUnknown) need(in(2) == 1, "the bias is not a vector");
    // Values shape inference divides by or sizes with (a zero stride is a division by zero there).
    at_least("kernel_shape", 1);
    at_least("strides", 1);
    at_least("dilations", 1);
    at_least("pads", 0);
    if (auto g = attr("group")) need(g->i() >= 1, "group is below 1");
    return r;
  }

  int rule(const std::string& op) {
    if (op == "Conv") return window(true);
    if (op == "MaxPool" || op == "AveragePool") return window(false);
    if (op == "GlobalAveragePool") {
      need(in(0) == kUnknown || in(0) >= 3,
           fmt::format("input 0 has rank {}, where the operator needs at least 3", in(0)));
      return in(0);
    }
    if (op == "BatchNormalization") {
      need(in(0) == kUnknown || in(0) >= 2, "input 0 has no channel dimension");
      for (int k = 1; k < 5; ++k)
        need(in(k) == kUnknown || in(k) == 1, fmt::format("input {} is not a vector", k));
      return in(0);
    }
    if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div")
      return in(0) == kUnknown || in(1) == kUnknown ? kUnknown : std::max(in(0), in(1));
    if (op == "MatMul") {
      int a = in(0), b = in(1);
      need(a != 0 && b != 0, "MatMul takes no scalars");
      if (a == kUnknown || b == kUnknown) return kUnknown;
      if (a == 1 && b == 1) return 0;
      if (a == 1) return b - 1;
      if (b == 1) return a - 1;
      return std::max(a, b);
    }
    if (op == "Gemm") {
      need(in(0) == kUnknown || in(0) == 2, fmt::format("A has rank {}, not 2", in(0)));
      need(in(1) == kUnknown || in(1) == 2, fmt::format("B has rank {}, not 2", in(1)));
      need(in(2) == kUnknown || in(2) <= 2, fmt::format("C has rank {}, more than 2", in(2)));
      return 2;
    }
    if (op == "Softmax" || op == "LogSoftmax") {
      axis_within("axis", 1, in(0), false);  // the default matters not: -1 and 1 both fit rank >= 2
      return in(0);
    }
    if (op == "Flatten") {
      axis_within("axis", 1, in(0), true);
      return 2;
    }
    if (op == "Concat") {
      int r = kUnknown;
      for (int k = 0; k < n_->input_size(); ++k) {
        if (in(k) == kUnknown) continue;
        need(r == kUnknown || in(k) == r,
             fmt::format("input {} has rank {} where the others have {}", k, in(k), r));
        r = in(k);
      }
      need(r != 0, "Concat takes no scalars");
      axis_within("axis", 0, r, false);
      return r;
    }
    if (op == "Transpose") {
      auto p = attr("perm");
      int r = in(0);
      if (!p || r == kUnknown) return r;
      std::vector<bool> seen(static_cast<std::size_t>(r));
      need(p->ints_size() == r,
           fmt::format("perm has {} values for a rank-{} input", p->ints_size(), r));
      for (auto v : p->ints()) {
        need(v >= 0 && v < r && !seen[static_cast<std::size_t>(v)],
             "perm is not a permutation of the input's axes");
        seen[static_cast<std::size_t>(v)] = true;
      }
      return r;
    }
    if (op == "Reshape") {
      need(in(1) == kUnknown || in(1) == 1, "the shape input is not a vector");
      auto it = n_->input_size() > 1 ? length_.find(n_->input(1)) : length_.end();
      // A shape longer than any tensor oneDNN holds is left to the run to refuse.
      return it == length_.end() || it->second > 64 ? kUnknown : static_cast<int>(it->second);
    }
    if (op == "Squeeze" ||
        op == "Unsqueeze") {  // axes as an attribute before opset 13, an input after
      need(in(1) == kUnknown || in(1) == 1, "the axes input is not a vector");
      auto axes = attr("axes");
      if (!axes || in(0) == kUnknown) return kUnknown;
      int r = op == "Unsqueeze" ? in(0) + axes->ints_size() : in(0);
      for (auto a : axes->ints())
        need(a >= -r && a < r, fmt::format("axis {} is outside a rank-{} tensor", a, r));
      return op == "Unsqueeze" ? r : r - axes->ints_size();
    }
    if (op == "Constant") {
      for (const auto& a : n_->attribute()) {
        if (a.name() == "value") return a.t().dims_size();
        if (a.name() == "value_floats" || a.name() == "value_ints") return 1;
      }
      return 0;
    }
    return same_as_input();  // Relu, LeakyRelu, Sigmoid, Tanh, Clip, Dropout, Identity
  }

  std::unordered_map<std::string, int> rank_;
  std::unordered_map<std::string, int> declared_;
  std::unordered_set<std::string> not_tensor_;

 public:
  std::unordered_set<std::string>
      declared_not_tensor_;  // graph outputs and value_info; erased once produced
  std::unordered_map<std::string, std::int64_t>
      length_;  // the lengths of known vectors (Reshape's shape)
  std::string who_;
  const onnx::NodeProto* n_ = nullptr;
};

}  // namespace

std::string rank_problem(const onnx::GraphProto& g) {
  try {
    Ranks ranks(g);
    for (int i = 0; i < g.node_size(); ++i) ranks.node(g.node(i), static_cast<std::size_t>(i));
    for (const auto& name : ranks.declared_not_tensor_)
      if (!ranks.defined(name))
        return fmt::format(
            "'{}' is declared as a sequence, map or optional, which is not supported", name);
  } catch (const Refused& r) {
    return r.why;
  }
  return {};
}

}  // namespace unifn::onnx_model
