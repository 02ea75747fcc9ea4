#include "api/comparison_chart.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace uq {
namespace {

constexpr std::array<const char*, 8> kColors = {"#4e79a7", "#e15759", "#59a14f", "#f28e2b",
                                                "#b07aa1", "#76b7b2", "#edc948", "#9c755f"};
constexpr double kWidth = 980, kHeight = 440;

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string number(double value, int significant = 4) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*g", significant, value);
  return text;
}

// A row's series: the model and where it ran, e.g. "mlx (cuda)".
std::string series_name(const ComparisonRow& row) {
  return row.backend + " (" + row.device + ")";
}

// [low, high] padded so that points do not sit on the frame.
std::pair<double, double> padded_range(double low, double high) {
  const double span = high - low;
  const double pad = span > 0 ? span * 0.1 : std::max(std::abs(high) * 0.05, 1e-3);
  return {low - pad, high + pad};
}

class Svg {
 public:
  Svg() {
    out_ << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
         << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\""
         << kHeight << "\" viewBox=\"0 0 " << kWidth << ' ' << kHeight
         << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
         << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  }
  std::ostringstream& raw() { return out_; }
  void text(double x, double y, const std::string& content, const std::string& extra = "") {
    out_ << "<text x=\"" << number(x, 6) << "\" y=\"" << number(y, 6) << "\" " << extra << '>'
         << escape(content) << "</text>\n";
  }
  void line(double x1, double y1, double x2, double y2, const std::string& stroke) {
    out_ << "<line x1=\"" << number(x1, 6) << "\" y1=\"" << number(y1, 6) << "\" x2=\""
         << number(x2, 6) << "\" y2=\"" << number(y2, 6) << "\" stroke=\"" << stroke << "\"/>\n";
  }
  std::string finish() {
    out_ << "</svg>\n";
    return out_.str();
  }

 private:
  std::ostringstream out_;
};

void scatter_panel(Svg& svg, const BackendComparison& comparison) {
  const double left = 70, right = 470, top = 60, bottom = 360;
  double min_x = INFINITY, max_x = -INFINITY, min_y = INFINITY, max_y = -INFINITY;
  for (const auto& row : comparison.rows) {
    min_x = std::min(min_x, row.decode_tokens_per_second);
    max_x = std::max(max_x, row.decode_tokens_per_second);
    min_y = std::min(min_y, row.perplexity);
    max_y = std::max(max_y, row.perplexity);
  }
  // Plain pairs, not structured bindings: clang 14 cannot capture those in lambdas.
  const std::pair<double, double> x_range = padded_range(min_x, max_x);
  const std::pair<double, double> y_range = padded_range(min_y, max_y);
  const auto to_x = [&](double v) {
    return left + (v - x_range.first) / (x_range.second - x_range.first) * (right - left);
  };
  const auto to_y = [&](double v) {
    return bottom - (v - y_range.first) / (y_range.second - y_range.first) * (bottom - top);
  };
  svg.text((left + right) / 2, 40, "Speed vs accuracy", "text-anchor=\"middle\" font-size=\"15\"");
  svg.raw() << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << right - left
            << "\" height=\"" << bottom - top << "\" fill=\"none\" stroke=\"#888\"/>\n";
  for (int tick = 0; tick <= 4; ++tick) {
    const double vx = x_range.first + (x_range.second - x_range.first) * tick / 4.0;
    const double vy = y_range.first + (y_range.second - y_range.first) * tick / 4.0;
    svg.line(to_x(vx), bottom, to_x(vx), bottom + 5, "#888");
    svg.text(to_x(vx), bottom + 18, number(vx, 3), "text-anchor=\"middle\"");
    svg.line(left - 5, to_y(vy), left, to_y(vy), "#888");
    svg.text(left - 8, to_y(vy) + 4, number(vy, 4), "text-anchor=\"end\"");
  }
  svg.text((left + right) / 2, bottom + 38, "decode tokens/s (higher is faster)",
           "text-anchor=\"middle\"");
  svg.text(
      18, (top + bottom) / 2, "perplexity (lower is better)",
      "text-anchor=\"middle\" transform=\"rotate(-90 18 " + number((top + bottom) / 2, 6) + ")\"");
  for (std::size_t i = 0; i < comparison.rows.size(); ++i) {
    const auto& row = comparison.rows[i];
    const char* color = kColors[i % kColors.size()];
    const double x = to_x(row.decode_tokens_per_second), y = to_y(row.perplexity);
    svg.raw() << "<g data-series=\"" << escape(series_name(row)) << "\">\n"
              << "<circle cx=\"" << number(x, 6) << "\" cy=\"" << number(y, 6)
              << "\" r=\"7\" fill=\"" << color << "\"/>\n";
    svg.text(x + 10, y - 8, series_name(row) + " cos " + number(row.cosine_similarity, 5),
             std::string("fill=\"") + color + "\"");
    svg.raw() << "</g>\n";
  }
}

void memory_panel(Svg& svg, const BackendComparison& comparison) {
  const double left = 620, right = 900, top = 60;
  const double band = std::min(60.0, 300.0 / static_cast<double>(comparison.rows.size()));
  double max_mib = 0;
  for (const auto& row : comparison.rows) {
    max_mib = std::max({max_mib, row.peak_memory_mib, row.disk_mib});
  }
  svg.text((left + right) / 2, 40, "Memory per backend (MiB)",
           "text-anchor=\"middle\" font-size=\"15\"");
  for (std::size_t i = 0; i < comparison.rows.size(); ++i) {
    const auto& row = comparison.rows[i];
    const char* color = kColors[i % kColors.size()];
    const double y = top + band * static_cast<double>(i);
    const double bar = band * 0.35;
    const double peak_width = row.peak_memory_mib / max_mib * (right - left);
    const double disk_width = row.disk_mib / max_mib * (right - left);
    svg.raw() << "<g data-series=\"" << escape(series_name(row)) << "\">\n";
    svg.text(left - 8, y + bar + 4, series_name(row), "text-anchor=\"end\"");
    svg.raw() << "<rect x=\"" << left << "\" y=\"" << number(y, 6) << "\" width=\""
              << number(peak_width, 6) << "\" height=\"" << number(bar, 6) << "\" fill=\"" << color
              << "\"/>\n";
    svg.text(left + peak_width + 4, y + bar - 2, "peak " + number(row.peak_memory_mib, 4));
    svg.raw() << "<rect x=\"" << left << "\" y=\"" << number(y + bar + 2, 6) << "\" width=\""
              << number(disk_width, 6) << "\" height=\"" << number(bar, 6) << "\" fill=\"" << color
              << "\" fill-opacity=\"0.45\"/>\n";
    svg.text(left + disk_width + 4, y + 2 * bar, "disk " + number(row.disk_mib, 4));
    svg.raw() << "</g>\n";
  }
}

}  // namespace

std::string comparison_chart_svg(const BackendComparison& comparison) {
  Svg svg;
  scatter_panel(svg, comparison);
  if (!comparison.rows.empty()) memory_panel(svg, comparison);
  svg.text(kWidth / 2, kHeight - 10,
           std::to_string(comparison.bits) + "-bit, input " + std::to_string(comparison.batch) +
               "x" + std::to_string(comparison.sequence) + ", perplexity over " +
               std::to_string(comparison.eval_tokens) + " tokens",
           "text-anchor=\"middle\" fill=\"#555\"");
  return svg.finish();
}

}  // namespace uq
