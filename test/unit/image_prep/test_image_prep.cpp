// The guest's image preparation on the host: metadata, decoding, gray/RGB, resizing, normalising,
// and images that must fail cleanly.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <stb_image_write.h>
#include <unifn/image_prep.h>

namespace {

const char* kFashion =
    "unifn.input=28x28 gray\nunifn.mean=0.2860\nunifn.std=0.3530\n"
    "unifn.labels=T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot\n"
    "unifn.invert=0\n";

void append(void* ctx, void* data, int size) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), size);
}

std::string png(int w, int h, int n, const std::vector<std::uint8_t>& px) {
  std::string out;
  REQUIRE(stbi_write_png_to_func(append, &out, w, h, n, px.data(), w * n));
  return out;
}

unifn_image_spec fashion_spec() {
  unifn_image_spec s;
  char err[200];
  REQUIRE(unifn_image_spec_parse(kFashion, &s, err, sizeof err) == 0);
  return s;
}

int prepare(const std::string& img, const unifn_image_spec& s, std::vector<float>& out,
            std::string* why = nullptr) {
  out.assign(unifn_image_spec_floats(&s), -99.0f);
  char err[200] = "";
  int rc = unifn_image_prepare(img.data(), img.size(), &s, out.data(), out.size(), err, sizeof err);
  if (why) *why = err;
  return rc;
}

}  // namespace

TEST_CASE("the model's metadata gives the input size, channels, normalisation and labels") {
  auto s = fashion_spec();
  CHECK((s.width == 28 && s.height == 28 && s.channels == 1 && s.invert == 0));
  CHECK(s.mean[0] == Approx(0.2860f));
  CHECK(s.std[0] == Approx(0.3530f));
  char v[256];
  CHECK(unifn_metadata_get(kFashion, "unifn.labels", v, sizeof v) > 0);
  char label[32];
  CHECK(unifn_list_entry(v, 6, label, sizeof label) == 5);
  CHECK(std::string(label) == "Shirt");
  CHECK(unifn_list_entry(v, 0, label, sizeof label) == 11);
  CHECK(std::string(label) == "T-shirt/top");
  CHECK(unifn_list_entry(v, 10, label, sizeof label) == -1);
  CHECK(unifn_metadata_get(kFashion, "unifn.missing", v, sizeof v) == -1);
  char tiny[4];
  CHECK(unifn_metadata_get(kFashion, "unifn.labels", tiny, sizeof tiny) == -1);  // does not fit

  unifn_image_spec rgb;
  char err[200];
  REQUIRE(unifn_image_spec_parse("unifn.input=32x16 rgb\nunifn.mean=0.5,0.4,0.3\nunifn.std=0.2\n"
                                 "unifn.invert=1\n",
                                 &rgb, err, sizeof err) == 0);
  CHECK((rgb.width == 32 && rgb.height == 16 && rgb.channels == 3 && rgb.invert == 1));
  CHECK((rgb.mean[2] == Approx(0.3f) && rgb.std[2] == Approx(0.2f)));

  for (auto [meta, key] : {std::pair{"unifn.mean=0\n", "unifn.input"},
                           {"unifn.input=28 gray\n", "unifn.input"},
                           {"unifn.input=28x28 cmyk\n", "unifn.input"},
                           {"unifn.input=99999x28 gray\n", "unifn.input"},
                           {"unifn.input=28x28 gray\nunifn.std=0\n", "unifn.std"},
                           {"unifn.input=28x28 gray\nunifn.mean=a\n", "unifn.mean"},
                           {"unifn.input=28x28 gray\nunifn.mean=1,2\n", "unifn.mean"},
                           {"unifn.input=28x28 gray\nunifn.invert=yes\n", "unifn.invert"}}) {
    unifn_image_spec bad;
    CHECK(unifn_image_spec_parse(meta, &bad, err, sizeof err) == -1);
    CHECK_THAT(std::string(err), Catch::Contains(key));
  }
}

TEST_CASE("a gray PNG of the model's size is normalised pixel by pixel, inverted when asked") {
  std::vector<std::uint8_t> px(28 * 28);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<std::uint8_t>(i * 7);
  auto s = fashion_spec();
  std::vector<float> out;
  REQUIRE(prepare(png(28, 28, 1, px), s, out) == 0);
  for (std::size_t i = 0; i < px.size(); ++i)
    REQUIRE(out[i] == Approx((px[i] / 255.0f - 0.2860f) / 0.3530f).margin(1e-5));
  s.invert = 1;
  REQUIRE(prepare(png(28, 28, 1, px), s, out) == 0);
  CHECK(out[5] == Approx(((255 - px[5]) / 255.0f - 0.2860f) / 0.3530f).margin(1e-5));
}

TEST_CASE("an RGB image of another size becomes gray at the model's size, and RGB stays planar") {
  // 280 x 140, left half white, right half black: resized to 28 x 28 gray, the same halves.
  const int w = 280, h = 140;
  std::vector<std::uint8_t> px(std::size_t(w) * h * 3, 0);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w / 2; ++x)
      for (int c = 0; c < 3; ++c) px[(std::size_t(y) * w + x) * 3 + c] = 255;
  auto s = fashion_spec();
  std::vector<float> out;
  REQUIRE(prepare(png(w, h, 3, px), s, out) == 0);
  const float white = (1.0f - 0.2860f) / 0.3530f, black = (0.0f - 0.2860f) / 0.3530f;
  CHECK(out[14 * 28 + 2] == Approx(white).margin(0.02));
  CHECK(out[14 * 28 + 25] == Approx(black).margin(0.02));

  unifn_image_spec rgb{};
  char err[200];
  REQUIRE(unifn_image_spec_parse("unifn.input=4x2 rgb\n", &rgb, err, sizeof err) == 0);
  std::vector<std::uint8_t> red(4 * 2 * 3, 0);
  for (std::size_t i = 0; i < red.size(); i += 3) red[i] = 255;
  REQUIRE(prepare(png(4, 2, 3, red), rgb, out) == 0);
  REQUIRE(out.size() == 24);
  CHECK((out[0] == 1.0f && out[7] == 1.0f && out[8] == 0.0f && out[23] == 0.0f));
}

TEST_CASE("a JPEG decodes like the PNG it was made from, within JPEG's loss") {
  std::vector<std::uint8_t> px(28 * 28, 30);
  for (int y = 6; y < 22; ++y)
    for (int x = 8; x < 20; ++x) px[std::size_t(y) * 28 + x] = 220;
  std::string jpg;
  REQUIRE(stbi_write_jpg_to_func(append, &jpg, 28, 28, 1, px.data(), 95));
  auto s = fashion_spec();
  std::vector<float> a, b;
  REQUIRE(prepare(jpg, s, a) == 0);
  REQUIRE(prepare(png(28, 28, 1, px), s, b) == 0);
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  CHECK(worst < 40 / 255.0 / 0.3530);
}

TEST_CASE("a PNG written by unifn_image_write_png decodes to the same pixels") {
  std::vector<std::uint8_t> px(7 * 5 * 3);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<std::uint8_t>(i * 11);
  std::string out;
  REQUIRE(unifn_image_write_png(append, &out, 7, 5, 3, px.data(), 7 * 3) == 1);
  int w = 0, h = 0, n = 0;
  char err[200];
  REQUIRE(unifn_image_info(out.data(), out.size(), &w, &h, &n, err, sizeof err) == 0);
  CHECK((w == 7 && h == 5 && n == 3));
  std::uint8_t* back = unifn_image_decode(out.data(), out.size(), 3, &w, &h, err, sizeof err);
  REQUIRE(back);
  CHECK(std::vector<std::uint8_t>(back, back + px.size()) == px);
  unifn_image_free(back);
  CHECK(unifn_image_decode(out.data(), out.size(), 5, &w, &h, err, sizeof err) == nullptr);
}

TEST_CASE("garbage, truncated and oversized images fail cleanly with a sentence") {
  auto s = fashion_spec();
  std::vector<float> out;
  std::string why;
  CHECK(prepare("not an image at all", s, out, &why) == -1);
  CHECK_THAT(why, Catch::Contains("not a PNG or JPEG"));
  CHECK(prepare("", s, out, &why) == -1);

  std::vector<std::uint8_t> px(64 * 64, 100);
  const auto good = png(64, 64, 1, px);
  for (std::size_t cut : {good.size() / 2, std::size_t{40}, std::size_t{10}}) {
    CHECK(prepare(good.substr(0, cut), s, out, &why) == -1);
    CHECK(!why.empty());
  }
  // A PNG whose header claims 30000 x 30000 (the IHDR's size, its CRC not fixed: refused anyway).
  auto huge = good;
  const std::uint8_t dims[8] = {0, 0, 0x75, 0x30, 0, 0, 0x75, 0x30};
  std::memcpy(huge.data() + 16, dims, 8);
  CHECK(prepare(huge, s, out, &why) < 0);
  // 8000 x 4000 is within a side but above the pixel cap: refused before decoding.
  const std::uint8_t wide[8] = {0, 0, 0x1f, 0x40, 0, 0, 0x0f, 0xa0};
  std::memcpy(huge.data() + 16, wide, 8);
  CHECK(prepare(huge, s, out, &why) == UNIFN_IMAGE_TOO_LARGE);
  CHECK_THAT(why, Catch::Contains("8000x4000"));

  // An output buffer too small, or no spec: refused without touching it.
  std::vector<float> small(10, 7.0f);
  char err[200];
  CHECK(unifn_image_prepare(good.data(), good.size(), &s, small.data(), small.size(), err,
                            sizeof err) == UNIFN_IMAGE_BADSPEC);
  CHECK(small[0] == 7.0f);
}

TEST_CASE(
    "thousands of corrupted PNGs and JPEGs each decode or fail cleanly, never past a buffer") {
  std::vector<std::uint8_t> px(40 * 30 * 3);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<std::uint8_t>(i * 13 + i / 7);
  std::string jpg;
  REQUIRE(stbi_write_jpg_to_func(append, &jpg, 40, 30, 3, px.data(), 80));
  const std::string sources[] = {png(40, 30, 3, px), jpg};
  auto s = fashion_spec();
  std::mt19937 rng(12);
  std::vector<float> out;
  int decoded = 0, refused = 0;
  for (const auto& good : sources)
    for (int round = 0; round < 3000; ++round) {
      auto bad = good;
      const int flips = 1 + static_cast<int>(rng() % 8);
      for (int f = 0; f < flips; ++f) bad[rng() % bad.size()] = static_cast<char>(rng() & 0xff);
      if (rng() % 4 == 0) bad.resize(rng() % bad.size());
      const int rc = prepare(bad, s, out);
      REQUIRE((rc == 0 || rc == UNIFN_IMAGE_BAD || rc == UNIFN_IMAGE_TOO_LARGE));
      (rc == 0 ? decoded : refused)++;
    }
  // Both outcomes happen: the corruption reaches the decoders, not only their signatures.
  CHECK(decoded > 100);
  CHECK(refused > 100);
}

TEST_CASE("a JPEG whose Huffman table counts more than 256 codes is refused before stb reads it") {
  std::vector<std::uint8_t> px(28 * 28, 90);
  std::string jpg;
  REQUIRE(stbi_write_jpg_to_func(append, &jpg, 28, 28, 1, px.data(), 90));
  const auto dht = jpg.find("\xFF\xC4");
  REQUIRE(dht != std::string::npos);
  auto s = fashion_spec();
  std::vector<float> out;
  std::string why;
  REQUIRE(prepare(jpg, s, out, &why) == 0);  // the image as written decodes
  // The first table's 16 counts (after the length and the class/id byte) made to total 16 * 255.
  auto bad = jpg;
  for (std::size_t k = 0; k < 16; ++k) bad[dht + 5 + k] = static_cast<char>(0xFF);
  CHECK(prepare(bad, s, out, &why) == UNIFN_IMAGE_BAD);
  CHECK_THAT(why, Catch::Contains("Huffman table of more than 256 codes"));
}
