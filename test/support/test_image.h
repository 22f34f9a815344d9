// Synthetic 8-bit images for the accelerator tests: gradients, a hard-edged box and noise.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

namespace unifn::test {

// w x h pixels of c interleaved channels; the same seed gives the same image.
inline std::vector<std::uint8_t> test_image(std::uint32_t w, std::uint32_t h, std::uint32_t c,
                                            unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint8_t> px(std::size_t(w) * h * c);
  // Smooth gradients, a hard-edged box and some noise: flat areas, edges and texture.
  for (std::uint32_t y = 0; y < h; ++y)
    for (std::uint32_t x = 0; x < w; ++x)
      for (std::uint32_t ch = 0; ch < c; ++ch) {
        int v = static_cast<int>((x * 255) / w + ch * 40 + (y * 3) % 50);
        if (x > w / 3 && x < 2 * w / 3 && y > h / 4 && y < h / 2)
          v = 250 - static_cast<int>(ch) * 60;
        v += static_cast<int>(rng() % 21) - 10;
        px[(std::size_t(y) * w + x) * c + ch] = static_cast<std::uint8_t>(std::clamp(v, 0, 255));
      }
  return px;
}

}  // namespace unifn::test
