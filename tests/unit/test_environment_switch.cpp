// EnvironmentSwitch: the first value from the environment, both defaults, changes at run time.
#include "core/environment_switch.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

namespace {

TEST(EnvironmentSwitch, DefaultOnIsOffOnlyForZero) {
  unsetenv("UQ_TEST_SWITCH_A");
  EXPECT_TRUE(uq::EnvironmentSwitch("UQ_TEST_SWITCH_A", true).on());
  setenv("UQ_TEST_SWITCH_A", "0", 1);
  EXPECT_FALSE(uq::EnvironmentSwitch("UQ_TEST_SWITCH_A", true).on());
  setenv("UQ_TEST_SWITCH_A", "1", 1);
  EXPECT_TRUE(uq::EnvironmentSwitch("UQ_TEST_SWITCH_A", true).on());
  setenv("UQ_TEST_SWITCH_A", "no", 1);
  EXPECT_TRUE(uq::EnvironmentSwitch("UQ_TEST_SWITCH_A", true).on());
  unsetenv("UQ_TEST_SWITCH_A");
}

TEST(EnvironmentSwitch, DefaultOffIsOnOnlyForOne) {
  unsetenv("UQ_TEST_SWITCH_B");
  EXPECT_FALSE(uq::EnvironmentSwitch("UQ_TEST_SWITCH_B", false).on());
  setenv("UQ_TEST_SWITCH_B", "1", 1);
  EXPECT_TRUE(uq::EnvironmentSwitch("UQ_TEST_SWITCH_B", false).on());
  setenv("UQ_TEST_SWITCH_B", "yes", 1);
  EXPECT_FALSE(uq::EnvironmentSwitch("UQ_TEST_SWITCH_B", false).on());
  unsetenv("UQ_TEST_SWITCH_B");
}

TEST(EnvironmentSwitch, SetOverridesTheEnvironment) {
  setenv("UQ_TEST_SWITCH_C", "0", 1);
  uq::EnvironmentSwitch a_switch("UQ_TEST_SWITCH_C", true);
  EXPECT_FALSE(a_switch.on());
  a_switch.set(true);
  EXPECT_TRUE(a_switch.on());
  a_switch.set(false);
  EXPECT_FALSE(a_switch.on());
  unsetenv("UQ_TEST_SWITCH_C");
}

}  // namespace
