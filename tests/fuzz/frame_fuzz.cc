// libFuzzer target: proto/frame.h's stream framing (harness.h, fuzz_frames).
#include <cstdio>
#include <cstdlib>

#include "tests/fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string error = portd::fuzz::fuzz_frames(data, size);
  if (!error.empty()) {
    std::fprintf(stderr, "fuzz_frames: %s\n", error.c_str());
    std::abort();
  }
  return 0;
}
