// 256 MiB regions in each mode, from one process to another, content checked
// by checksum (and spot checks against the pattern). See ool_support.h for
// what round_trip checks; client_ool_test.cc has the small sizes.
#include <gtest/gtest.h>

#include "portd/portd.h"
#include "tests/integration/client_support.h"
#include "tests/integration/daemon_fixture.h"
#include "tests/integration/ool_support.h"

namespace portd::testing {
namespace {

constexpr size_t kLarge = size_t{256} << 20;

class OolLargeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon_.started());
    task_ = connect_or_die(daemon_.socket_path(), "ool-large");
    ASSERT_NE(task_, nullptr);
    baseline_ = daemon_.open_fd_count();
  }
  void TearDown() override {
    EXPECT_TRUE(settles([&] { return daemon_.open_fd_count(); }, baseline_));
  }

  DaemonProcess daemon_;
  std::shared_ptr<Task> task_;
  int baseline_ = 0;
};

TEST_F(OolLargeTest, CopyMode256MiB) { round_trip(daemon_, *task_, OolMode::kCopy, kLarge); }

TEST_F(OolLargeTest, MoveMode256MiB) { round_trip(daemon_, *task_, OolMode::kMove, kLarge); }

TEST_F(OolLargeTest, VolatileMode256MiB) {
  round_trip(daemon_, *task_, OolMode::kVolatile, kLarge);
}

}  // namespace
}  // namespace portd::testing
