// Graph serialization (see serialize.h): fixed-width fields, counts before items, ids checked.
#include "accel/onnx/serialize.h"

#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

namespace unifn::onnx_model {

namespace {

[[noreturn]] void fail(std::string why) { throw std::runtime_error(std::move(why)); }

static_assert(std::variant_size_v<Attrs> == 10,
              "ByteWriter::graph and ByteReader::graph know 10 kinds of attributes");

constexpr std::uint64_t kMagic = 0x31485047'4e464e55;  // "UNFNGPH1" read as bytes

}  // namespace

void ByteWriter::u64(std::uint64_t v) {
  std::byte b[8];
  std::memcpy(b, &v, 8);
  out_.insert(out_.end(), b, b + 8);
}

void ByteWriter::f32(float v) {
  std::byte b[4];
  std::memcpy(b, &v, 4);
  out_.insert(out_.end(), b, b + 4);
}

void ByteWriter::str(const std::string& s) {
  u64(s.size());
  auto p = reinterpret_cast<const std::byte*>(s.data());  // Safe: std::byte may alias any object
  out_.insert(out_.end(), p, p + s.size());
}

void ByteWriter::ints(const std::vector<std::int64_t>& v) {
  u64(v.size());
  for (auto x : v) i64(x);
}

void ByteWriter::tensor(const Tensor& t) {
  u64(t.type == DType::Float ? 0 : 1);
  ints(t.dims);
  if (t.type == DType::Float) {
    u64(t.f.size());
    for (float x : t.f) f32(x);
  } else {
    ints(t.i);
  }
}

void ByteWriter::graph(const Graph& g) {
  u64(kMagic);
  i64(g.opset);
  u64(g.values.size());
  for (const Value& v : g.values) {
    str(v.name);
    u64(v.type == DType::Float ? 0 : 1);
    u64(v.shape_known);
    u64(v.dims.size());
    for (const Dim& d : v.dims) {
      i64(d.value);
      str(d.param);
    }
  }
  auto ids = [&](const std::vector<int>& v) {
    u64(v.size());
    for (int x : v) i64(x);
  };
  ids(g.inputs);
  ids(g.outputs);
  u64(g.initializers.size());
  for (const auto& [id, t] : g.initializers) {
    i64(id);
    tensor(t);
  }
  u64(g.nodes.size());
  for (const Node& n : g.nodes) {
    u64(static_cast<std::uint64_t>(n.op));
    str(n.name);
    u64(n.index);
    i64(n.version);
    ids(n.inputs);
    ids(n.outputs);
    u64(n.attrs.index());
    std::visit(
        [&](const auto& a) {
          using A = std::decay_t<decltype(a)>;
          if constexpr (std::is_same_v<A, WindowAttrs>) {
            ints(a.kernel_shape), ints(a.strides), ints(a.pads), ints(a.dilations);
            u64(static_cast<std::uint64_t>(a.auto_pad)), i64(a.group), u64(a.ceil_mode),
                u64(a.count_include_pad);
          } else if constexpr (std::is_same_v<A, GemmAttrs>) {
            f32(a.alpha), f32(a.beta), u64(a.trans_a), u64(a.trans_b);
          } else if constexpr (std::is_same_v<A, ScalarAttrs>) {
            f32(a.alpha), f32(a.beta);
          } else if constexpr (std::is_same_v<A, AxisAttrs>) {
            i64(a.axis);
          } else if constexpr (std::is_same_v<A, PermAttrs>) {
            ints(a.perm);
          } else if constexpr (std::is_same_v<A, AxesAttrs>) {
            ints(a.axes);
          } else if constexpr (std::is_same_v<A, BinaryAttrs>) {
            u64(a.legacy), u64(a.broadcast), u64(a.axis.has_value()), i64(a.axis.value_or(0));
          } else if constexpr (std::is_same_v<A, ReshapeAttrs>) {
            u64(a.allowzero);
          } else if constexpr (std::is_same_v<A, ConstantAttrs>) {
            tensor(a.value);
          }
        },
        n.attrs);
  }
  u64(g.metadata.size());
  for (const auto& [key, value] : g.metadata) str(key), str(value);
}

std::span<const std::byte> ByteReader::take(std::size_t n) {
  if (n > in_.size() - at_)
    fail(fmt::format("the bytes end at {} where {} more were expected", in_.size(), n));
  auto s = in_.subspan(at_, n);
  at_ += n;
  return s;
}

std::size_t ByteReader::count(std::size_t each_bytes) {
  std::uint64_t n = u64();
  // Each item takes at least each_bytes, so a count larger than what is left is a lie.
  if (n > (in_.size() - at_) / std::max<std::size_t>(each_bytes, 1))
    fail(fmt::format("a count of {} at byte {} passes the end of the bytes", n, at_));
  return static_cast<std::size_t>(n);
}

std::uint64_t ByteReader::u64() {
  std::uint64_t v;
  std::memcpy(&v, take(8).data(), 8);
  return v;
}

float ByteReader::f32() {
  float v;
  std::memcpy(&v, take(4).data(), 4);
  return v;
}

std::string ByteReader::str() {
  auto s = take(count(1));
  // Safe: std::byte may alias any object; the span lies inside the input.
  return std::string(reinterpret_cast<const char*>(s.data()), s.size());
}

std::vector<std::int64_t> ByteReader::ints() {
  std::vector<std::int64_t> v(count(8));
  for (auto& x : v) x = i64();
  return v;
}

Tensor ByteReader::tensor() {
  std::uint64_t type = u64();
  if (type > 1) fail(fmt::format("tensor type {} is neither float32 (0) nor int64 (1)", type));
  Tensor t;
  t.type = type == 0 ? DType::Float : DType::Int64;
  t.dims = ints();
  if (t.type == DType::Float) {
    t.f.resize(count(4));
    for (auto& x : t.f) x = f32();
  } else {
    t.i = ints();
  }
  if (t.elements() < 0 || static_cast<std::size_t>(t.elements()) != t.stored())
    fail(fmt::format("a tensor of shape {} holds {} values", shape_string(t.dims), t.stored()));
  return t;
}

Graph ByteReader::graph() {
  if (u64() != kMagic) fail("the bytes do not start with a serialized graph's magic number");
  Graph g;
  g.opset = i64();
  g.values.resize(count(32));
  for (Value& v : g.values) {
    v.name = str();
    std::uint64_t type = u64();
    if (type > 1) fail(fmt::format("value '{}' has type {}", v.name, type));
    v.type = type == 0 ? DType::Float : DType::Int64;
    v.shape_known = u64() != 0;
    v.dims.resize(count(16));
    for (Dim& d : v.dims) d.value = i64(), d.param = str();
  }
  auto id = [&](bool optional) {
    std::int64_t v = i64();
    if (!(optional && v == kNoValue) && (v < 0 || v >= static_cast<std::int64_t>(g.values.size())))
      fail(fmt::format("value id {} is outside the graph's {} values", v, g.values.size()));
    return static_cast<int>(v);
  };
  auto ids = [&](bool optional) {
    std::vector<int> v(count(8));
    for (int& x : v) x = id(optional);
    return v;
  };
  g.inputs = ids(false);
  g.outputs = ids(false);
  g.initializers.resize(count(16));
  for (auto& [v, t] : g.initializers) {
    v = id(false);
    t = tensor();
  }
  g.nodes.resize(count(48));
  for (Node& n : g.nodes) {
    std::uint64_t op = u64();
    if (op > static_cast<std::uint64_t>(Op::Identity))
      fail(fmt::format("operator {} is unknown", op));
    n.op = static_cast<Op>(op);
    n.name = str();
    n.index = static_cast<std::size_t>(u64());
    n.version = static_cast<int>(i64());
    n.inputs = ids(true);
    n.outputs = ids(false);
    if (n.outputs.empty()) fail(fmt::format("{} has no output", n.label()));
    switch (u64()) {  // the index of the attributes' type in Attrs
      case 0:
        break;
      case 1: {
        WindowAttrs a;
        a.kernel_shape = ints(), a.strides = ints(), a.pads = ints(), a.dilations = ints();
        std::uint64_t pad = u64();
        if (pad > static_cast<std::uint64_t>(AutoPad::Valid)) fail("auto_pad is unknown");
        a.auto_pad = static_cast<AutoPad>(pad);
        a.group = i64(), a.ceil_mode = u64() != 0, a.count_include_pad = u64() != 0;
        n.attrs = std::move(a);
        break;
      }
      case 2: {
        GemmAttrs a;
        a.alpha = f32(), a.beta = f32(), a.trans_a = u64() != 0, a.trans_b = u64() != 0;
        n.attrs = a;
        break;
      }
      case 3: {
        ScalarAttrs a;
        a.alpha = f32(), a.beta = f32();
        n.attrs = a;
        break;
      }
      case 4:
        n.attrs = AxisAttrs{i64()};
        break;
      case 5:
        n.attrs = PermAttrs{ints()};
        break;
      case 6:
        n.attrs = AxesAttrs{ints()};
        break;
      case 7: {
        BinaryAttrs a;
        a.legacy = u64() != 0, a.broadcast = u64() != 0;
        bool has_axis = u64() != 0;
        std::int64_t axis = i64();
        if (has_axis) a.axis = axis;
        n.attrs = a;
        break;
      }
      case 8:
        n.attrs = ReshapeAttrs{u64() != 0};
        break;
      case 9:
        n.attrs = ConstantAttrs{tensor()};
        break;
      default:
        fail(fmt::format("{} has attributes of an unknown kind", n.label()));
    }
  }
  g.metadata.resize(count(16));
  for (auto& [key, value] : g.metadata) key = str(), value = str();
  return g;
}

std::vector<std::byte> serialize(const Graph& g) {
  ByteWriter w;
  w.graph(g);
  return w.bytes();
}

Expected<Graph> deserialize(std::span<const std::byte> bytes) {
  try {
    ByteReader r(bytes);
    Graph g = r.graph();
    if (!r.done()) return Error{"bytes are left over after the serialized graph"};
    return g;
  } catch (const std::exception& e) {
    return Error{std::string("not a serialized graph: ") + e.what()};
  }
}

}  // namespace unifn::onnx_model
