// make_corpus DIR: writes the seed corpus (seeds.h) to DIR/frame and
// DIR/request, after checking that every seed passes its harness. Run from
// the top of the repository as
//   build/tests/fuzz/portd_make_corpus tests/fuzz/corpus
// whenever the schema or the fuzz world changes (corpus_test says when).
// Files named seed-* that are no longer made are removed; regress-* files
// are left alone.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tests/fuzz/harness.h"
#include "tests/fuzz/seeds.h"

namespace fs = std::filesystem;

namespace {

bool write_corpus(const fs::path& dir, const portd::fuzz::Corpus& corpus,
                  std::string (*harness)(const uint8_t*, size_t)) {
  bool ok = true;
  fs::create_directories(dir);
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("seed-", 0) == 0 && corpus.count(name) == 0) fs::remove(entry.path());
  }
  for (const auto& [name, bytes] : corpus) {
    const std::string error = harness(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    if (!error.empty()) {
      std::fprintf(stderr, "%s: seed %s fails its harness: %s\n", dir.c_str(), name.c_str(),
                   error.c_str());
      ok = false;
    }
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", (dir / name).c_str());
      ok = false;
    }
  }
  std::printf("%s: %zu seeds\n", dir.c_str(), corpus.size());
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR (tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  spdlog::set_level(spdlog::level::off);
  const fs::path dir = argv[1];
  bool ok = write_corpus(dir / "request", portd::fuzz::request_seeds(), portd::fuzz::fuzz_requests);
  ok = write_corpus(dir / "frame", portd::fuzz::frame_seeds(), portd::fuzz::fuzz_frames) && ok;
  return ok ? 0 : 1;
}
