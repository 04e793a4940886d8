// The seed corpus: real encoded requests, made here rather than kept as
// opaque files so that they follow the schema and the fuzz world
// (harness.h). `make_corpus DIR` writes them to DIR/frame and DIR/request;
// corpus_test checks that the files committed under tests/fuzz/corpus are
// what this produces, and replays every file (seeds and regressions) through
// the harnesses.
//
// Seed files are named `seed-*`. Inputs that once broke something are kept
// beside them as `regress-*` (added by hand, never regenerated).
#pragma once

#include <map>
#include <string>

namespace portd::fuzz {

// File name → contents.
using Corpus = std::map<std::string, std::string>;

// Streams of requests for fuzz_requests: hello, every request kind, messages
// with every descriptor kind (and fds), parked requests and their cancel,
// names of other tasks, bad dispositions, a malformed frame, introspection.
Corpus request_seeds();

// Inputs for fuzz_frames: those requests framed as records with their fds,
// in both modes and both limit sets, and frames at and over each limit.
Corpus frame_seeds();

}  // namespace portd::fuzz
