// The classify benchmark of `unifnd bench-accel`: one classify call through a real guest (reset
// included) against the same image preparation and model called directly in the host.
#pragma once

#include <memory>
#include <ostream>
#include <string>

#include "accel/backend.h"
#include "vmm/platform/platform.h"

namespace unifn::cli {

struct ClassifyBenchOptions {
  std::shared_ptr<accel::Backend> backend;  // available, and runs models
  std::string image;                        // classify.elf
  std::string model;                        // the ONNX file classify.elf embeds
  vmm::Platform* platform = nullptr;
  bool quick = false;
};

// The classify example and its model beside unifnd (build tree or installed); empty when absent.
std::string find_classify_image();
std::string find_classify_model();

// Prints classify_us_p50 (of which classify_reset_us_p50 is the reset), classify_host_us_p50,
// classify_guest_over_host (host time / guest time) and classify_results_match to out. Throws
// std::runtime_error naming what failed.
void bench_classify(const ClassifyBenchOptions& opts, std::ostream& out);

}  // namespace unifn::cli
