// A unifn function image read from disk and validated once, shared by every VM that runs it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "vmm/loader/elf.h"

namespace unifn::vmm {

struct FunctionImage {
  std::string path;
  std::vector<std::uint8_t> bytes;
  ElfImage elf;

  // Reads and validates path: an ELF64 unifn image built for this ABI version; throws
  // ImageError with a sentence naming the file otherwise.
  static std::shared_ptr<const FunctionImage> load(const std::string& path);
  // The same checks over bytes already in memory.
  static std::shared_ptr<const FunctionImage> from_bytes(std::string name,
                                                         std::vector<std::uint8_t> bytes);
};

}  // namespace unifn::vmm
