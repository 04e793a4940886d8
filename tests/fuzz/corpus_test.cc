// The fuzz corpus in the ordinary test run, built with the project's own
// compiler (and sanitizers, in a PORTD_SANITIZE build): every committed input,
// seeds and regressions, passes its harness; and the committed seeds are what
// seeds.cc makes now (when the schema or the fuzz world changes, regenerate
// them with portd_make_corpus, tests/fuzz/make_corpus.cc).
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "tests/fuzz/harness.h"
#include "tests/fuzz/seeds.h"

#ifndef PORTD_FUZZ_CORPUS
#error "PORTD_FUZZ_CORPUS must name tests/fuzz/corpus"
#endif

namespace portd::fuzz {
namespace {

namespace fs = std::filesystem;

Corpus read_dir(const std::string& kind) {
  Corpus out;
  for (const auto& entry : fs::directory_iterator(fs::path(PORTD_FUZZ_CORPUS) / kind)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    out[entry.path().filename().string()] = ss.str();
  }
  return out;
}

void replay(const std::string& kind, std::string (*harness)(const uint8_t*, size_t)) {
  spdlog::set_level(spdlog::level::off);
  const Corpus files = read_dir(kind);
  EXPECT_FALSE(files.empty());
  for (const auto& [name, bytes] : files)
    EXPECT_EQ(harness(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), "")
        << kind << "/" << name;
  spdlog::set_level(spdlog::level::info);
}

void expect_current(const std::string& kind, const Corpus& seeds) {
  Corpus committed;
  for (auto& [name, bytes] : read_dir(kind))
    if (name.rfind("seed-", 0) == 0) committed[name] = bytes;
  std::set<std::string> names;
  for (const auto& [name, bytes] : seeds) names.insert(name);
  for (const auto& [name, bytes] : committed) names.insert(name);
  for (const auto& name : names) {
    EXPECT_TRUE(committed.count(name) != 0 && seeds.count(name) != 0 &&
                committed.at(name) == seeds.at(name))
        << kind << "/" << name
        << " differs from what seeds.cc makes: regenerate with "
           "build/tests/fuzz/portd_make_corpus tests/fuzz/corpus";
  }
}

TEST(FuzzCorpus, RequestInputsPassTheirHarness) { replay("request", fuzz_requests); }
TEST(FuzzCorpus, FrameInputsPassTheirHarness) { replay("frame", fuzz_frames); }

TEST(FuzzCorpus, CommittedSeedsAreCurrent) {
  spdlog::set_level(spdlog::level::off);
  expect_current("request", request_seeds());
  expect_current("frame", frame_seeds());
  spdlog::set_level(spdlog::level::info);
}

// The world the seeds are written against: each name it promises exists.
TEST(FuzzCorpus, WorldHasItsNames) {
  const RequestWorld w = request_world();
  for (ipc::Name n :
       {w.service0, w.port0, w.service1, w.port1, w.set1, w.service2, w.port2, w.dead3})
    EXPECT_NE(n, ipc::kNameNull);
}

}  // namespace
}  // namespace portd::fuzz
