#include <gtest/gtest.h>

#include "api/config.hpp"
#include "core/error.hpp"

namespace uq {
namespace {

std::string validation_error(UnifiedQuantizationConfig config) {
  try {
    validate(config);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(Config, DefaultsAreValid) {
  UnifiedQuantizationConfig config;
  EXPECT_EQ(validation_error(config), "");
  EXPECT_EQ(config.effective_bits(), 4);
  config.default_bits = 8;
  EXPECT_EQ(config.effective_bits(), 8);
}

TEST(Config, SeedExampleIsValid) {
  UnifiedQuantizationConfig config;
  config.backend = "mlx";
  config.default_bits = 4;
  config.layer_bits = {{"embed", 8}, {"lm_head", 8}, {"model.layers.0", 6}};
  EXPECT_EQ(validation_error(config), "");
}

TEST(Config, BadValuesNameTheOption) {
  UnifiedQuantizationConfig config;
  config.bits = 0;
  EXPECT_NE(validation_error(config).find("bits 0"), std::string::npos);
  config.bits = 9;
  EXPECT_NE(validation_error(config).find("bits 9"), std::string::npos);
  config = {};
  config.group_size = 48;
  EXPECT_NE(validation_error(config).find("group size 48"), std::string::npos);
  config = {};
  config.backend = "tensorrt";
  EXPECT_NE(validation_error(config).find("unknown backend 'tensorrt'"), std::string::npos);
  config = {};
  config.layer_bits = {{"lm_head", 12}};
  EXPECT_NE(validation_error(config).find("layer_bits 'lm_head'=12"), std::string::npos);
  config = {};
  config.method = "magic";
  EXPECT_NE(validation_error(config).find("unknown method 'magic'"), std::string::npos);
  config = {};
  config.skip = {"re:(("};
  EXPECT_NE(validation_error(config).find("re:(("), std::string::npos);
  config = {};
  config.device = "tpu";
  EXPECT_NE(validation_error(config).find("unknown device 'tpu'"), std::string::npos);
}

TEST(Config, MpsIsAnAliasOfCustom) {
  UnifiedQuantizationConfig config;
  config.backend = "mps";
  config.bits = 8;
  EXPECT_NO_THROW(validate(config));
  EXPECT_EQ(config.backend, "custom");
}

TEST(Config, CalibratedMethodsNeedTheirInputsAndAGroupWiseFormat) {
  UnifiedQuantizationConfig config;
  config.method = "gptq";
  EXPECT_NE(validation_error(config).find("calibration_data"), std::string::npos);
  config.calibration_data = "data/train.txt";
  EXPECT_EQ(validation_error(config), "");
  config.calibration_ctx = 0;
  EXPECT_NE(validation_error(config).find("calibration_ctx 0"), std::string::npos);
  config.calibration_ctx = 256;
  config.backend = "bnb";
  EXPECT_NE(validation_error(config).find("backend 'bnb'"), std::string::npos);
  config.method = "hqq";
  config.backend = "custom";
  EXPECT_NE(validation_error(config).find("symmetric"), std::string::npos);
  config.backend = "quanto";
  config.bits = 2;
  EXPECT_EQ(validation_error(config), "");
}

}  // namespace
}  // namespace uq
