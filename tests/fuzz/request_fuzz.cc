// libFuzzer target: the daemon's request path, frames to core (harness.h,
// fuzz_requests).
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>

#include "tests/fuzz/harness.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // The driver logs what it refuses; a fuzz run would print little else.
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string error = portd::fuzz::fuzz_requests(data, size);
  if (!error.empty()) {
    std::fprintf(stderr, "fuzz_requests: %s\n", error.c_str());
    std::abort();
  }
  return 0;
}
