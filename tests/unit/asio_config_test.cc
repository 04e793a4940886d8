// Regression: Asio must be configured alike in every file of the daemon.
//
// Asio allocates its handler memory with std::aligned_alloc (freed with
// std::free) if libstdc++'s configuration macros are visible when its own
// configuration is read, and with operator new (freed with operator delete)
// otherwise. A file that included Asio before any standard header decided the
// second way, the others the first, and memory allocated by one was freed by
// the other: undefined behaviour, which ASan reported as alloc-dealloc-mismatch
// whenever the introspector posted a handler in a sanitized daemon.
// daemon/CMakeLists.txt now decides for every file; this file includes Asio
// first, as introspect.cc does, and must see the same decision.
// clang-format off
#include <asio/io_context.hpp>
// clang-format on

#include <gtest/gtest.h>

#include <cstdlib>

namespace {

TEST(AsioConfig, FilesThatIncludeAsioFirstAllocateLikeTheOthers) {
#if defined(ASIO_HAS_STD_ALIGNED_ALLOC)
  void* p = asio::aligned_new(64, 100);
  ASSERT_NE(p, nullptr);
  asio::aligned_delete(p);
#else
  FAIL() << "Asio was configured to allocate with operator new in this file, with "
            "std::aligned_alloc in files that include a standard header first";
#endif
}

}  // namespace
