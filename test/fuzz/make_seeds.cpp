// Writes the fuzzer's seed corpus: well-formed (and a few broken) request sequences in the fuzz
// input format.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>

#include "test/fuzz/fuzz_layout.h"
#include "test/support/ring_harness.h"

using namespace unifn;
using namespace unifn::test;

static_assert(Harness::kDesc == fuzz::kDesc && Harness::kAvail == fuzz::kAvail &&
              Harness::kUsed == fuzz::kUsed && Harness::kData == fuzz::kData &&
              Harness::kQueue == fuzz::kQueue);

using Chains = std::vector<std::vector<D>>;

namespace {

// Lays out a CREATE_SESSION then the chains `more` makes (session 1), publishes all (the last one
// `repeat` times: one chain may be made available again and again), dumps RAM.
void seed(const std::filesystem::path& dir, const std::string& name, std::uint32_t mode,
          const std::function<std::vector<std::vector<D>>(Harness&)>& more,
          std::size_t repeat = 1) {
  Harness h;
  std::vector<std::vector<D>> chains;
  const auto flags = h.put(std::uint32_t{0});
  const auto id = h.alloc(4);
  chains.push_back(h.chain_for(UNIFN_ACCEL_CMD_CREATE_SESSION, 0, 0,
                               {{flags, 4, UNIFN_ACCEL_ARG_UINT32}},
                               {{id, 4, UNIFN_ACCEL_ARG_UINT32}}));
  for (auto& c : more(h)) chains.push_back(std::move(c));
  std::uint16_t slot = 0, published = 0;
  for (std::size_t i = 0; i < chains.size(); ++i) {
    h.lay(chains[i], slot);
    for (std::size_t r = 0; r < (i + 1 == chains.size() ? repeat : 1); ++r)
      h.mem.write_obj<std::uint16_t>(vmm::GuestAddr(Harness::kAvail + 4 + 2 * published++), slot);
    slot = static_cast<std::uint16_t>(slot + chains[i].size());
  }
  h.mem.write_obj<std::uint16_t>(vmm::GuestAddr(Harness::kAvail + 2), published);
  fuzz::Header hdr{mode, 64, {{0x70, 0}, {0x50, 0}, {0x44, 0}, {0x30, 1}}};
  std::ofstream out(dir / name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&hdr), sizeof hdr);  // Safe: POD header as bytes.
  const auto ram = h.get_vec<char>(fuzz::kRamAt, h.next_free - fuzz::kRamAt);
  out.write(ram.data(), static_cast<std::streamsize>(ram.size()));
}

std::vector<D> sgemm(Harness& h, std::int64_t m, std::int64_t n, std::int64_t k) {
  auto i64 = [&](std::int64_t v) { return A{h.put(v), 8, UNIFN_ACCEL_ARG_INT64}; };
  auto f32 = [&](float v) { return A{h.put(v), 4, UNIFN_ACCEL_ARG_FLOAT32}; };
  auto buf = [&](std::int64_t floats) {
    return A{h.alloc(4 * floats, 0x3f), static_cast<std::uint32_t>(4 * floats),
             UNIFN_ACCEL_ARG_FLOAT32};
  };
  return h.chain_for(
      UNIFN_ACCEL_CMD_DO_OP, 1, UNIFN_ACCEL_OP_BLAS_SGEMM,
      {i64(m), i64(n), i64(k), f32(1), buf(m * k), i64(k), buf(k * n), i64(n), f32(0), i64(n)},
      {buf(m * n)});
}

// The node tests' Relu model, registered in session 1; then a run of it with x of `dims`.
std::vector<char> seed_model() {
  std::ifstream f(UNIFN_SEED_MODEL, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
std::vector<D> model_register(Harness& h) {
  const auto bytes = seed_model();
  const auto at = h.put_vec(bytes);
  return h.chain_for(UNIFN_ACCEL_CMD_MODEL_REGISTER, 1, 0,
                     {{at, static_cast<std::uint32_t>(bytes.size())}},
                     {{h.alloc(sizeof(unifn_accel_model_io)), sizeof(unifn_accel_model_io),
                       UNIFN_ACCEL_ARG_STRUCT},
                      {h.alloc(64), 64}});
}
std::vector<D> model_run(Harness& h, std::vector<std::int64_t> dims) {
  unifn_accel_model_io io{};
  io.model_id = 1;
  io.nr_inputs = 1;
  io.inputs[0].type = UNIFN_ACCEL_ARG_FLOAT32;
  io.inputs[0].rank = static_cast<std::uint32_t>(dims.size());
  std::int64_t n = 1;
  for (std::size_t i = 0; i < dims.size(); ++i) n *= (io.inputs[0].dims[i] = dims[i]);
  const auto bytes = static_cast<std::uint32_t>(4 * n);
  return h.chain_for(
      UNIFN_ACCEL_CMD_DO_OP, 1, UNIFN_ACCEL_OP_MODEL_RUN,
      {{h.put(io), sizeof io, UNIFN_ACCEL_ARG_STRUCT},
       {h.alloc(bytes, 0x3f), bytes, UNIFN_ACCEL_ARG_FLOAT32}},
      {{h.alloc(sizeof io), sizeof io, UNIFN_ACCEL_ARG_STRUCT}, {h.alloc(240), 240}});
}

std::vector<D> minmax(Harness& h, std::int32_t n) {
  auto i32 = [&](std::int32_t v) { return A{h.put(v), 4, UNIFN_ACCEL_ARG_INT32}; };
  auto f64 = [&](std::int32_t count) {
    return A{h.alloc(8 * count, 0x40), static_cast<std::uint32_t>(8 * count),
             UNIFN_ACCEL_ARG_FLOAT64};
  };
  return h.chain_for(UNIFN_ACCEL_CMD_DO_OP, 1, UNIFN_ACCEL_OP_MINMAX,
                     {f64(n), i32(n), i32(0), i32(255)}, {f64(n), f64(1), f64(1)});
}

std::vector<D> image(Harness& h, unifn_accel_image_params p) {
  const std::uint32_t in = p.width * p.height * p.channels,
                      out = p.out_width * p.out_height * p.out_channels;
  return h.chain_for(UNIFN_ACCEL_CMD_DO_OP, 1, UNIFN_ACCEL_OP_OPENCV,
                     {{h.put(p), sizeof p, UNIFN_ACCEL_ARG_STRUCT},
                      {h.alloc(in, 0x80), in, UNIFN_ACCEL_ARG_UINT8}},
                     {{h.alloc(out), out, UNIFN_ACCEL_ARG_UINT8}});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds DIR\n");
    return 64;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  using P = unifn_accel_image_params;
  seed(dir, "noop", 0, [](Harness& h) {
    return Chains{h.chain_for(UNIFN_ACCEL_CMD_NOOP, 0, 0, {}, {}),
                  h.chain_for(UNIFN_ACCEL_CMD_DO_OP, 1, 0, {}, {}),
                  h.chain_for(UNIFN_ACCEL_CMD_DESTROY_SESSION, 1, 0, {}, {})};
  });
  seed(dir, "sgemm-cpu", fuzz::kModeCpu, [](Harness& h) { return Chains{sgemm(h, 8, 5, 3)}; });
  seed(dir, "sgemm-restore", fuzz::kModeRestore,
       [](Harness& h) { return Chains{sgemm(h, 2, 3, 4)}; });
  seed(dir, "minmax", fuzz::kModePokes, [](Harness& h) { return Chains{minmax(h, 16)}; });
  seed(dir, "gray-cpu", fuzz::kModeCpu, [](Harness& h) {
    return Chains{image(h, P{1, 9, 7, 3, 9, 7, 1, 0, 0, 0})};
  });
  seed(dir, "blur", 0, [](Harness& h) {
    return Chains{image(h, P{2, 9, 7, 2, 9, 7, 2, 5, 1.5f, 0})};
  });
  seed(dir, "blur-cpu", fuzz::kModeCpu, [](Harness& h) {
    return Chains{image(h, P{2, 9, 7, 4, 9, 7, 4, 3, 0, 0})};
  });
  seed(dir, "sobel-cpu", fuzz::kModeCpu, [](Harness& h) {
    return Chains{image(h, P{3, 12, 5, 1, 12, 5, 1, 0, 0, 0})};
  });
  seed(dir, "resize-cpu", fuzz::kModeCpu | fuzz::kModeRestore, [](Harness& h) {
    return Chains{image(h, P{4, 6, 4, 3, 13, 9, 3, 0, 0, 0})};
  });
  // More work than a call of fuzz_accel has time for (on the reference backend), and stops between
  // chains.
  seed(dir, "sgemm-big", 0, [](Harness& h) {
    return Chains{sgemm(h, 256, 256, 256), minmax(h, 8)};
  });
  seed(
      dir, "sgemm-63-times", 0, [](Harness& h) { return Chains{sgemm(h, 100, 100, 100)}; },
      63);  // each too small to budget
  seed(dir, "minmax-cancel", fuzz::kModeCancel, [](Harness& h) {
    return Chains{minmax(h, 4), minmax(h, 4), minmax(h, 4)};
  });
  seed(dir, "sgemm-late", fuzz::kModeLate | fuzz::kModeCpu, [](Harness& h) {
    return Chains{sgemm(h, 8, 5, 3), minmax(h, 4)};
  });
  seed(dir, "model-cpu", fuzz::kModeCpu | fuzz::kModeRestore, [](Harness& h) {
    return Chains{model_register(h), model_run(h, {3, 4, 5}), model_run(h, {3, 4, 6})};
  });
  seed(dir, "model-late", fuzz::kModeCpu | fuzz::kModeLate, [](Harness& h) {
    return Chains{model_register(h), model_run(h, {3, 4, 5})};
  });
  seed(dir, "overlap", 0, [](Harness& h) {
    auto c = minmax(h, 4);
    c[6].addr = c[2].addr;
    return Chains{c};
  });
  std::printf("seeds written to %s\n", dir.c_str());
  return 0;
}
