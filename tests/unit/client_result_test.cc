// portd::Result: a status, a value on success, sometimes a value with a
// failure, and a loud error when a missing value is read.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "portd/result.h"

namespace portd {
namespace {

TEST(ClientResultTest, SuccessCarriesTheValue) {
  Result<int> r(42);
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r.status(), Status::kSuccess);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 42);
  EXPECT_EQ(r.detail(), "");
}

TEST(ClientResultTest, FailureCarriesStatusAndDetail) {
  Result<std::string> r(Status::kResourceShortage, "refused by the ports limit");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status(), Status::kResourceShortage);
  EXPECT_FALSE(r.has_value());
  EXPECT_EQ(r.detail(), "refused by the ports limit");
  // Reading a value that is not there is the caller's bug: it throws, it
  // never reads garbage.
  EXPECT_THROW(r.value(), std::bad_optional_access);
  EXPECT_THROW(*r, std::bad_optional_access);
  EXPECT_THROW((void)r->size(), std::bad_optional_access);
}

TEST(ClientResultTest, FailureWithAValue) {
  auto r = Result<int>::with_value(Status::kRcvTooLarge, 124);
  EXPECT_FALSE(r.ok());
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 124);
}

TEST(ClientResultTest, MoveOnlyValues) {
  Result<std::unique_ptr<int>> r(std::make_unique<int>(7));
  std::unique_ptr<int> taken = std::move(r).value();
  EXPECT_EQ(*taken, 7);
}

}  // namespace
}  // namespace portd
