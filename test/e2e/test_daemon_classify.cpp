// The classify example through the real daemon: Fashion-MNIST test images (PNG and JPEG, of the
// model's size and larger) answer their class; bodies that are not images answer 400.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include <stb_image.h>
#include <stb_image_write.h>

#include "test/e2e/daemon_fixture.h"

using namespace unifn::test;

namespace {

namespace fs = std::filesystem;

struct Sample {
  fs::path path;
  int truth;  // the class in the file's name: <label>_<class>.png
};

std::vector<Sample> samples() {
  std::vector<Sample> out;
  const std::regex name("[a-z0-9-]+_([0-9])\\.png");
  for (const auto& e : fs::directory_iterator(fs::path(UNIFN_SOURCE_DIR) / "test/data/fashion")) {
    std::smatch m;
    const auto file = e.path().filename().string();
    if (std::regex_match(file, m, name)) out.push_back({e.path(), std::stoi(m[1])});
  }
  return out;
}

struct Answer {
  std::string status, body;
};

// POSTs the file and returns the status and body.
Answer post(const Daemon& d, const std::string& file) {
  const std::string out = "/tmp/unifn-e2e-classify-" + std::to_string(getpid());
  Answer a;
  a.status = curl("-o " + out + " -w '%{http_code}' --data-binary @" + file + " " +
                  d.url("/function/classify"));
  std::ifstream f(out, std::ios::binary);
  a.body.assign(std::istreambuf_iterator<char>(f), {});
  unlink(out.c_str());
  return a;
}

// The class and label of a classify answer, or -1.
int class_of(const std::string& json, std::string* label = nullptr) {
  std::smatch m;
  if (!std::regex_search(json, m,
                         std::regex("^\\{\"label\": \"([^\"]*)\", \"class\": ([0-9]+), "
                                    "\"confidence\": ([0-9.]+)\\}\n$")))
    return -1;
  const double p = std::stod(m[3]);
  if (p <= 0.1 || p > 1.0) return -1;  // ten classes: the top one has at least a tenth
  if (label) *label = m[1];
  return std::stoi(m[2]);
}

void append(void* ctx, void* data, int size) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), size);
}

// The sample re-encoded: as a JPEG of the same size, or as an RGB PNG `scale` times larger.
std::string reencode(const fs::path& png, bool jpeg, int scale) {
  int w = 0, h = 0, n = 0;
  stbi_uc* px = stbi_load(png.c_str(), &w, &h, &n, 1);
  REQUIRE(px);
  std::string out;
  if (jpeg) {
    REQUIRE(stbi_write_jpg_to_func(append, &out, w, h, 1, px, 100));
  } else {
    std::vector<std::uint8_t> big(std::size_t(w) * scale * h * scale * 3);
    for (int y = 0; y < h * scale; ++y)
      for (int x = 0; x < w * scale; ++x)
        for (int c = 0; c < 3; ++c)
          big[(std::size_t(y) * w * scale + x) * 3 + c] = px[(y / scale) * w + x / scale];
    REQUIRE(
        stbi_write_png_to_func(append, &out, w * scale, h * scale, 3, big.data(), w * scale * 3));
  }
  stbi_image_free(px);
  return out;
}

std::string write_temp(const std::string& tag, const std::string& bytes) {
  const std::string path = "/tmp/unifn-e2e-" + tag + "-" + std::to_string(getpid());
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  return path;
}

}  // namespace

TEST_CASE("classify answers each Fashion-MNIST sample's class, as PNG, JPEG and a larger RGB PNG") {
  const auto all = samples();
  REQUIRE(all.size() >= 10);
  Daemon d;
  int right = 0, right_jpeg = 0, right_big = 0;
  for (const auto& s : all) {
    auto a = post(d, s.path.string());
    INFO(s.path.filename().string() << ": " << a.status << " " << a.body);
    REQUIRE(a.status == "200");
    std::string label;
    const int got = class_of(a.body, &label);
    REQUIRE(got >= 0);
    right += got == s.truth;
    if (s.path.filename() == "shirt_6.png") CHECK((got == 6 && label == "Shirt"));

    const auto jpg = write_temp("classify-jpg", reencode(s.path, true, 1));
    auto j = post(d, jpg);
    unlink(jpg.c_str());
    REQUIRE(j.status == "200");
    right_jpeg += class_of(j.body) == s.truth;

    const auto big = write_temp("classify-big", reencode(s.path, false, 9));  // 252 x 252 RGB
    auto b = post(d, big);
    unlink(big.c_str());
    REQUIRE(b.status == "200");
    right_big += class_of(b.body) == s.truth;
  }
  // The model's accuracy is about 90%: nearly every sample, not necessarily all.
  const int need = static_cast<int>(all.size()) * 8 / 10;
  CHECK(right >= need);
  CHECK(right_jpeg >= need);
  CHECK(right_big >= need);
}

TEST_CASE("classify answers 400 to garbage and to a truncated PNG, and serves on after") {
  const auto all = samples();
  REQUIRE(!all.empty());
  Daemon d;
  const auto garbage = write_temp("classify-garbage", "this is not an image");
  auto g = post(d, garbage);
  CHECK(g.status == "400");
  CHECK_THAT(g.body, Catch::Contains("not a PNG or JPEG"));

  std::ifstream f(all[0].path, std::ios::binary);
  std::string png((std::istreambuf_iterator<char>(f)), {});
  const auto cut = write_temp("classify-cut", png.substr(0, png.size() / 2));
  auto c = post(d, cut);
  CHECK(c.status == "400");
  CHECK(!c.body.empty());

  const auto empty = write_temp("classify-empty", "");
  CHECK(post(d, empty).status == "400");
  unlink(garbage.c_str());
  unlink(cut.c_str());
  unlink(empty.c_str());

  auto after = post(d, all[0].path.string());
  CHECK(after.status == "200");
  CHECK(class_of(after.body) >= 0);
}

TEST_CASE(
    "a new daemon restores classify from the snapshot on disk: the model is loaded again from "
    "the guest's copy and answers the same") {
  const auto all = samples();
  REQUIRE(!all.empty());
  const auto& s = all[0];
  Daemon d;
  auto first = post(d, s.path.string());
  REQUIRE(first.status == "200");
  REQUIRE(d.stop() == 0);
  Daemon again;  // the same state directory
  auto second = post(again, s.path.string());
  CHECK(second.status == "200");
  CHECK(second.body == first.body);
  CHECK_THAT(
      curl(again.url("/metrics")),
      Catch::Contains("unifn_snapshot_builds_total{function=\"classify\",source=\"disk\"} 1"));
}
