// ONNX model loading: protobuf parse, onnx::checker, onnx::shape_inference, then the executor's own
// refusals (operator, data type, opset, external data), building the typed graph once.
#include "accel/onnx/model.h"

#include <array>
#include <limits>
#include <map>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>
#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>

#include "accel/onnx/op_info.h"
#include "accel/onnx/rank_check.h"
#include "accel/onnx/tensor_proto.h"

namespace unifn::onnx_model {

namespace {

bool default_domain(const std::string& d) { return d.empty() || d == "ai.onnx"; }

// Thrown inside load() with a full sentence; caught at its end and returned as the Error.
struct Refusal {
  std::string message;
};

// Refuses tensors held outside the model (a path a guest could point anywhere) and subgraphs, which
// no supported operator takes, wherever an attribute could hold them.
void refuse_outside_data(const onnx::NodeProto& n, const std::string& who) {
  for (const auto& a : n.attribute()) {
    auto external = [](const onnx::TensorProto& t) {
      return t.data_location() == onnx::TensorProto::EXTERNAL || t.external_data_size() > 0;
    };
    bool ext = (a.has_t() && external(a.t())) ||
               (a.has_sparse_tensor() && external(a.sparse_tensor().values()));
    for (const auto& t : a.tensors()) ext = ext || external(t);
    if (ext)
      throw Refusal{fmt::format(
          "{}: attribute '{}' refers to external data: only data held in the model is accepted",
          who, a.name())};
    if (a.has_g() || a.graphs_size() > 0)
      throw Refusal{fmt::format(
          "{}: attribute '{}' holds a subgraph, which no supported operator takes", who, a.name())};
  }
}

class Builder {
 public:
  Builder(const onnx::ModelProto& m, Graph& g) : m_(m), g_(g) {}

  void build() {
    const auto& graph = m_.graph();
    for (const auto& vi : graph.input()) types_[vi.name()] = &vi.type();
    for (const auto& vi : graph.value_info()) types_[vi.name()] = &vi.type();
    for (const auto& vi : graph.output()) types_[vi.name()] = &vi.type();

    for (const auto& t : graph.initializer()) {
      auto value = from_proto(t, fmt::format("initializer '{}'", t.name()));
      if (!value) throw Refusal{value.error()};
      int id = define(t.name(), value->type, true, value->dims);
      g_.initializers.emplace_back(id, std::move(value.value()));
    }
    for (const auto& vi : graph.input()) {
      if (ids_.contains(vi.name())) continue;  // an initializer listed as an input too (IR < 4)
      auto d = declared(vi.name());
      // A graph input the executor cannot hold is refused by the node that takes it, named there.
      if (!d.unusable.empty())
        unusable_[vi.name()] = d.unusable;
      else
        g_.inputs.push_back(define(vi.name(), d.type, d.known, std::move(d.dims)));
    }
    for (int i = 0; i < graph.node_size(); ++i) node(graph.node(i), static_cast<std::size_t>(i));
    for (const auto& [name, why] : unusable_) throw Refusal{fmt::format("graph input {}", why)};
    for (const auto& vi : graph.output()) {
      auto it = ids_.find(vi.name());
      if (it == ids_.end())
        throw Refusal{fmt::format("graph output '{}' is computed by no node", vi.name())};
      g_.outputs.push_back(it->second);
    }
  }

 private:
  struct Declared {
    DType type = DType::Float;
    bool known = false;
    std::vector<Dim> dims;
    std::string unusable;  // why the executor cannot hold the value, when it cannot
  };

  int define(const std::string& name, DType type, bool known,
             const std::vector<std::int64_t>& dims) {
    std::vector<Dim> d;
    for (auto v : dims) d.push_back(Dim{v, {}});
    return define(name, type, known, std::move(d));
  }
  int define(const std::string& name, DType type, bool known, std::vector<Dim> dims) {
    int id = static_cast<int>(g_.values.size());
    g_.values.push_back(Value{name, type, known, std::move(dims)});
    ids_[name] = id;
    return id;
  }

  // The type and shape the model declares (or shape inference found) for a value.
  Declared declared(const std::string& name) const {
    Declared d;
    auto it = types_.find(name);
    if (it == types_.end()) {
      d.unusable = fmt::format("'{}': its type is unknown after shape inference", name);
      return d;
    }
    const onnx::TypeProto& t = *it->second;
    if (!t.has_tensor_type()) {
      d.unusable = fmt::format(
          "'{}' is not a tensor (a sequence, map or optional), which is not supported", name);
      return d;
    }
    const auto& tt = t.tensor_type();
    d.known = tt.has_shape();
    if (tt.elem_type() == onnx::TensorProto::INT64)
      d.type = DType::Int64;
    else if (tt.elem_type() != onnx::TensorProto::FLOAT)
      d.unusable = fmt::format(
          "'{}' has data type {}: only float32 (and int64 for shapes) is supported", name,
          onnx::TensorProto::DataType_Name(
              static_cast<onnx::TensorProto::DataType>(tt.elem_type())));
    if (tt.has_shape())
      for (const auto& dim : tt.shape().dim())
        d.dims.push_back(Dim{dim.has_dim_value() ? dim.dim_value() : -1, dim.dim_param()});
    return d;
  }

  void node(const onnx::NodeProto& n, std::size_t index) {
    Node out{Op::Identity, n.name(), index, {}, {}, {}};
    std::string who = node_label(index, n.name(), n.op_type());
    const OpInfo* info = op_named(n.op_type());  // supported_operators() has made sure it is found
    out.op = info->op;
    // The checker found the operator's schema; its version is the newest not after the model's
    // opset.
    const auto* schema =
        onnx::OpSchemaRegistry::Schema(n.op_type(), static_cast<int>(g_.opset), "");
    out.version = schema ? schema->SinceVersion() : static_cast<int>(g_.opset);
    if (out.version < info->oldest)
      throw Refusal{fmt::format(
          "{}: version {} of the operator (opset {}) is not supported, only {} and later: {}", who,
          out.version, g_.opset, info->oldest, info->why_not_older)};
    Attributes a(n, who);
    out.attrs = attributes(out.op, out.version, a, who);

    for (int p = 0; p < n.input_size(); ++p) {
      const std::string& in = n.input(p);
      if (in.empty()) {
        out.inputs.push_back(kNoValue);
        continue;
      }
      if (auto bad = unusable_.find(in); bad != unusable_.end()) {
        std::string why = bad->second;
        unusable_.erase(bad);
        throw Refusal{fmt::format("{}: input {} {}", who, p, why)};
      }
      auto it = ids_.find(in);
      if (it == ids_.end())
        throw Refusal{fmt::format("{}: input '{}' is defined by nothing before it", who, in)};
      DType want = input_type(out.op, p);
      DType have = g_.values[static_cast<std::size_t>(it->second)].type;
      if (have != want)
        throw Refusal{fmt::format("{}: input {} '{}' is {}, where this operator takes {}", who, p,
                                  in, to_string(have), to_string(want))};
      out.inputs.push_back(it->second);
    }
    refuse_spatial_rank(out, who);
    refuse_extra_outputs(out.op, n, who);
    for (const auto& o : n.output()) {
      if (out.op == Op::Constant) {
        const Tensor& v = std::get<ConstantAttrs>(out.attrs).value;
        out.outputs.push_back(define(o, v.type, true, v.dims));
        continue;
      }
      auto d = declared(o);
      if (!d.unusable.empty()) throw Refusal{fmt::format("{}: output {}", who, d.unusable)};
      if (d.type != DType::Float)
        throw Refusal{fmt::format("{}: output '{}' is {}, where only float32 is supported", who, o,
                                  to_string(d.type))};
      out.outputs.push_back(define(o, d.type, d.known, std::move(d.dims)));
    }
    g_.nodes.push_back(std::move(out));
  }

  static DType input_type(Op op, int position) {
    bool shape_like = op == Op::Reshape || op == Op::Squeeze || op == Op::Unsqueeze;
    return shape_like && position == 1 ? DType::Int64 : DType::Float;
  }

  // A window over more than 2 spatial dims is refused where the rank is known here (a Conv whose
  // kernel_shape is left to the weights has no attribute that says it).
  void refuse_spatial_rank(const Node& n, const std::string& who) const {
    bool windowed = n.op == Op::Conv || n.op == Op::MaxPool || n.op == Op::AveragePool ||
                    n.op == Op::GlobalAveragePool;
    if (!windowed || n.inputs.empty() || n.inputs[0] == kNoValue) return;
    const Value& x = g_.values[static_cast<std::size_t>(n.inputs[0])];
    if (x.shape_known && x.dims.size() > 4)
      throw Refusal{fmt::format("{}: {}-D spatial windows are not supported, only 1-D and 2-D", who,
                                x.dims.size() - 2)};
  }

  void refuse_extra_outputs(Op op, const onnx::NodeProto& n, const std::string& who) const {
    if (n.output_size() <= 1) return;
    if (op == Op::MaxPool)
      throw Refusal{fmt::format("{}: the Indices output is not supported", who)};
    if (op == Op::Dropout)
      throw Refusal{fmt::format("{}: the mask output is not supported (inference only)", who)};
    if (op == Op::BatchNormalization)
      throw Refusal{fmt::format(
          "{}: running mean and variance outputs are training mode, which is not supported", who)};
  }

  // The attributes of one node, looked up by name; the checker has already matched them to the
  // schema.
  class Attributes {
   public:
    Attributes(const onnx::NodeProto& n, std::string who)
        : inputs(n.input_size()), n_(n), who_(std::move(who)) {
      for (const auto& a : n.attribute()) by_name_[a.name()] = &a;
    }
    const onnx::AttributeProto* find(const std::string& name) const {
      auto it = by_name_.find(name);
      return it == by_name_.end() ? nullptr : it->second;
    }
    std::int64_t i(const std::string& name, std::int64_t def) const {
      auto a = find(name);
      return a ? a->i() : def;
    }
    float f(const std::string& name, float def) const {
      auto a = find(name);
      return a ? a->f() : def;
    }
    std::string s(const std::string& name, std::string def) const {
      auto a = find(name);
      return a ? a->s() : def;
    }
    std::vector<std::int64_t> ints(const std::string& name) const {
      auto a = find(name);
      return a ? std::vector<std::int64_t>(a->ints().begin(), a->ints().end())
               : std::vector<std::int64_t>{};
    }
    const std::string& input(int k) const { return n_.input(k); }
    int inputs;
    [[noreturn]] void refuse(const std::string& why) const {
      throw Refusal{fmt::format("{}: {}", who_, why)};
    }

   private:
    const onnx::NodeProto& n_;
    std::string who_;
    std::map<std::string, const onnx::AttributeProto*> by_name_;
  };

  // Attributes by the operator's version: `version` is its schema's since_version.
  static Attrs attributes(Op op, int version, const Attributes& a, const std::string& who) {
    switch (op) {
      case Op::Conv:
      case Op::MaxPool:
      case Op::AveragePool:
        return window(op, a);
      case Op::BatchNormalization:
        if (a.i("training_mode", 0) != 0 || a.i("is_test", 1) == 0)
          a.refuse("training mode is not supported (inference only)");
        if (a.i("spatial", 1) != 1)
          a.refuse("spatial=0 (per-activation statistics) is not supported");
        return ScalarAttrs{a.f("epsilon", 1e-5f), 0};
      case Op::LeakyRelu:
        return ScalarAttrs{a.f("alpha", 0.01f), 0};
      case Op::Clip:  // before opset 11 the bounds are attributes, after it inputs
        return ScalarAttrs{a.f("min", std::numeric_limits<float>::lowest()),
                           a.f("max", std::numeric_limits<float>::max())};
      case Op::Gemm:
        return GemmAttrs{a.f("alpha", 1), a.f("beta", 1), a.i("transA", 0) != 0,
                         a.i("transB", 0) != 0};
      case Op::Softmax:
      case Op::LogSoftmax:
        return AxisAttrs{a.i("axis", version < 13 ? 1 : -1)};
      case Op::Concat:
        return AxisAttrs{a.i("axis", version < 4 ? 1 : 0)};
      case Op::Add:
      case Op::Sub:
      case Op::Mul:
      case Op::Div: {
        if (version >= 7) return BinaryAttrs{};
        auto axis = a.find("axis");
        return BinaryAttrs{true, a.i("broadcast", 0) != 0,
                           axis ? std::optional(axis->i()) : std::nullopt};
      }
      case Op::Flatten:
        return AxisAttrs{a.i("axis", 1)};
      case Op::Transpose:
        return PermAttrs{a.ints("perm")};
      case Op::Reshape:
        return ReshapeAttrs{a.i("allowzero", 0) != 0};
      case Op::Squeeze:
      case Op::Unsqueeze:
        return AxesAttrs{a.ints("axes")};
      case Op::Dropout:
        if (a.inputs > 2 && !a.input(2).empty())
          a.refuse("the training_mode input is not supported (inference only)");
        if (a.i("is_test", 1) == 0) a.refuse("is_test=0 (training) is not supported");
        return std::monostate{};
      case Op::Constant:
        return ConstantAttrs{constant(a, who)};
      default:
        return std::monostate{};
    }
  }

  static WindowAttrs window(Op op, const Attributes& a) {
    WindowAttrs w;
    w.kernel_shape = a.ints("kernel_shape");
    w.strides = a.ints("strides");
    w.pads = a.ints("pads");
    w.dilations = a.ints("dilations");
    w.group = a.i("group", 1);
    w.ceil_mode = a.i("ceil_mode", 0) != 0;
    w.count_include_pad = a.i("count_include_pad", 0) != 0;
    std::string pad = a.s("auto_pad", "NOTSET");
    if (pad == "SAME_UPPER")
      w.auto_pad = AutoPad::SameUpper;
    else if (pad == "SAME_LOWER")
      w.auto_pad = AutoPad::SameLower;
    else if (pad == "VALID")
      w.auto_pad = AutoPad::Valid;
    else if (pad != "NOTSET")
      a.refuse(fmt::format("auto_pad '{}' is not one ONNX defines", pad));
    if (op != Op::Conv && w.kernel_shape.empty()) a.refuse("kernel_shape is required");
    std::size_t rank = w.kernel_shape.size();
    if (rank > 2)
      a.refuse(fmt::format("{}-D spatial windows are not supported, only 1-D and 2-D", rank));
    // rank_problem() has refused sizes, strides and dilations below 1, negative pads and groups.
    if (op == Op::AveragePool && w.ceil_mode && w.count_include_pad)
      a.refuse("ceil_mode with count_include_pad is not supported");
    return w;
  }

  static Tensor constant(const Attributes& a, const std::string& who) {
    if (auto t = a.find("value")) {
      auto v = from_proto(t->t(), fmt::format("{}: value", who));
      if (!v) throw Refusal{v.error()};
      return std::move(v.value());
    }
    if (auto t = a.find("value_float")) return Tensor::floats({}, {t->f()});
    if (auto t = a.find("value_floats"))
      return Tensor::floats({t->floats_size()}, {t->floats().begin(), t->floats().end()});
    if (auto t = a.find("value_int")) return Tensor::ints({}, {t->i()});
    if (auto t = a.find("value_ints"))
      return Tensor::ints({t->ints_size()}, {t->ints().begin(), t->ints().end()});
    a.refuse("only a dense float32 or int64 value is supported (not sparse_value or strings)");
  }

  const onnx::ModelProto& m_;
  Graph& g_;
  std::unordered_map<std::string, const onnx::TypeProto*> types_;
  std::unordered_map<std::string, int> ids_;
  std::map<std::string, std::string> unusable_;  // graph inputs no node has taken yet, and why
};

// Refuses every node outside the supported operators and those holding data outside the model,
// before the ONNX library looks at the graph: its checker and shape inference then see only the
// operators whose rules rank_problem() knows.
void supported_operators(const onnx::GraphProto& g) {
  for (int i = 0; i < g.node_size(); ++i) {
    const auto& n = g.node(i);
    std::string who = node_label(static_cast<std::size_t>(i), n.name(), n.op_type());
    if (!default_domain(n.domain()))
      throw Refusal{fmt::format("{}: domain '{}' is not supported, only the default ONNX domain",
                                who, n.domain())};
    if (!op_named(n.op_type()))
      throw Refusal{fmt::format("{}: the operator is not supported", who)};
    refuse_outside_data(n, who);
  }
}

std::int64_t default_opset(const onnx::ModelProto& m) {
  for (const auto& o : m.opset_import())
    if (default_domain(o.domain())) return o.version();
  throw Refusal{"the model imports no opset of the default ONNX domain"};
}

// The metadata as "key=value" lines can carry it to a guest: no '=' in keys, no line breaks or
// NULs anywhere, and a bounded size.
std::vector<std::pair<std::string, std::string>> metadata_of(const onnx::ModelProto& m) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t bytes = 0;
  for (const auto& p : m.metadata_props()) {
    const auto bad = [](const std::string& s, std::string_view chars) {
      return s.find_first_of(chars) != std::string::npos;
    };
    using namespace std::string_view_literals;
    if (p.key().empty() || bad(p.key(), "=\n\r\0"sv) || bad(p.value(), "\n\r\0"sv))
      throw Refusal{fmt::format(
          "metadata key '{}' is empty or holds '=', a line break or a NUL (in its value too)",
          p.key().substr(0, 64))};
    bytes += p.key().size() + p.value().size() + 2;
    if (bytes > kMaxMetadataBytes)
      throw Refusal{fmt::format("the model's metadata is more than the {} bytes accepted",
                                kMaxMetadataBytes)};
    out.emplace_back(p.key(), p.value());
  }
  return out;
}

}  // namespace

Expected<std::shared_ptr<const Graph>> load(std::span<const std::byte> bytes) {
  if (bytes.size() > kMaxModelBytes)
    return Error{fmt::format("the model is {} bytes, more than the {} accepted", bytes.size(),
                             kMaxModelBytes)};
  onnx::ModelProto m;
  if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return Error{"the model is not an ONNX ModelProto (protobuf parsing failed)"};
  auto g = std::make_shared<Graph>();
  try {
    // External data is refused before the checker, which would otherwise look for the files named.
    for (const auto& t : m.graph().initializer())
      if (t.data_location() == onnx::TensorProto::EXTERNAL || t.external_data_size() > 0)
        throw Refusal{fmt::format(
            "initializer '{}' refers to external data: only data held in the model is accepted",
            t.name())};
    if (m.graph().sparse_initializer_size() > 0)
      throw Refusal{fmt::format("sparse initializer '{}' is not supported",
                                m.graph().sparse_initializer(0).values().name())};
    if (static_cast<std::size_t>(m.graph().node_size()) > kMaxNodes)
      throw Refusal{fmt::format("the graph has {} nodes, more than the {} accepted",
                                m.graph().node_size(), kMaxNodes)};
    supported_operators(m.graph());
    if (m.functions_size() > 0)
      throw Refusal{
          fmt::format("model-local function '{}' is not supported", m.functions(0).name())};
    g->opset = default_opset(m);
    if (g->opset < kMinOpset || g->opset > kMaxOpset)
      throw Refusal{fmt::format("opset {} of the default domain is not supported, only {} to {}",
                                g->opset, kMinOpset, kMaxOpset)};
    try {
      onnx::checker::check_model(m);
    } catch (const std::exception& e) {
      throw Refusal{fmt::format("the ONNX checker refuses the model: {}", e.what())};
    }
    if (auto why = rank_problem(m.graph()); !why.empty()) throw Refusal{why};
    try {
      onnx::ShapeInferenceOptions options(/*check_type=*/true, /*strict_mode=*/1,
                                          /*data_prop=*/false);
      onnx::shape_inference::InferShapes(m, onnx::OpSchemaRegistry::Instance(), options);
    } catch (const std::exception& e) {
      throw Refusal{fmt::format("ONNX shape inference refuses the model: {}", e.what())};
    }
    Builder(m, *g).build();
    g->metadata = metadata_of(m);
  } catch (const Refusal& r) {
    return Error{r.message};
  }
  return std::shared_ptr<const Graph>(std::move(g));
}

}  // namespace unifn::onnx_model
