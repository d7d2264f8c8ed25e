// Progress display: a redrawn bar with ETA on a terminal, plain lines otherwise.
#include <gtest/gtest.h>

#include <sstream>

#include "attnrank/core/progress.h"

using namespace attnrank;

TEST(Progress, BarModeRedrawsOneLineWithEta) {
  std::ostringstream out;
  ProgressBar bar(out, 100, /*bar=*/true);
  bar.update(10, "loss 0.5", true);
  bar.update(50, "loss 0.2", true);
  bar.finish();
  const std::string text = out.str();
  EXPECT_EQ(text.front(), '\r');
  EXPECT_NE(text.find("50/100"), std::string::npos);
  EXPECT_NE(text.find("ETA"), std::string::npos);
  EXPECT_NE(text.find("#"), std::string::npos);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find('\n'), text.size() - 1) << "one line, redrawn in place";
}

TEST(Progress, LineModePrintsPlainLines) {
  std::ostringstream out;
  ProgressBar bar(out, 4, /*bar=*/false);
  bar.update(2, "loss 0.5");
  bar.update(4, "loss 0.1");
  bar.finish();
  const std::string text = out.str();
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_NE(text.find("[2/4] loss 0.5"), std::string::npos);
  EXPECT_NE(text.find("[4/4] loss 0.1"), std::string::npos);
}

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(format_duration(12.2), "12s");
  EXPECT_EQ(format_duration(187), "3m07s");
  EXPECT_EQ(format_duration(3720), "1h02m");
  EXPECT_EQ(format_duration(-1), "?");
}
