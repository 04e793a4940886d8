// portd_fuzz_replay frame|request FILE...: runs inputs through a harness
// without libFuzzer (any compiler, a debugger), printing each verdict. With
// PORTD_FUZZ_TRACE=1, fuzz_requests prints every request and reply.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/fuzz/harness.h"

int main(int argc, char** argv) {
  if (argc < 3 || (std::strcmp(argv[1], "frame") != 0 && std::strcmp(argv[1], "request") != 0)) {
    std::fprintf(stderr, "usage: %s frame|request FILE...\n", argv[0]);
    return 2;
  }
  const bool frame = std::strcmp(argv[1], "frame") == 0;
  int failed = 0;
  for (int i = 2; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "%s: cannot read\n", argv[i]);
      ++failed;
      continue;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string bytes = ss.str();
    const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
    const std::string error = frame ? portd::fuzz::fuzz_frames(data, bytes.size())
                                    : portd::fuzz::fuzz_requests(data, bytes.size());
    std::printf("%s: %s\n", argv[i], error.empty() ? "ok" : error.c_str());
    if (!error.empty()) ++failed;
  }
  return failed == 0 ? 0 : 1;
}
