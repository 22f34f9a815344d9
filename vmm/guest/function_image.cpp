// Validation of unifn function images: ELF64 checks plus the ABI note.
#include "vmm/guest/function_image.h"

#include <fmt/format.h>
#include <unifn/abi.h>

namespace unifn::vmm {

std::shared_ptr<const FunctionImage> FunctionImage::load(const std::string& path) {
  return from_bytes(path, read_image_file(path));
}

std::shared_ptr<const FunctionImage> FunctionImage::from_bytes(std::string name,
                                                               std::vector<std::uint8_t> bytes) {
  auto img = std::make_shared<FunctionImage>();
  img->path = std::move(name);
  img->bytes = std::move(bytes);
  if (is_elf(img->bytes) && elf_class(img->bytes) == 1)
    throw ImageError(
        fmt::format("{}: a 32-bit ELF is not a unifn function image (functions are ELF64; "
                    "32-bit kernels boot through multiboot)",
                    img->path));
  img->elf = parse_elf64(img->bytes, img->path);
  if (!img->elf.unifn_abi)
    throw ImageError(
        fmt::format("{}: not a unifn function image (no \"unifn\" ABI note; build it with "
                    "unifn_add_function)",
                    img->path));
  if (*img->elf.unifn_abi != UNIFN_ABI_VERSION)
    throw ImageError(fmt::format("{}: built for unifn ABI version {}, this VMM speaks version {}",
                                 img->path, *img->elf.unifn_abi, UNIFN_ABI_VERSION));
  return img;
}

}  // namespace unifn::vmm
