#include "common/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace cdc::bench {
namespace {

void append_escaped(std::string_view s, std::string& out) {
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
}

void append_xml(std::string_view s, std::string& out) {
  for (const char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
}

std::string fmt(const char* format, double v) {
  char buf[256];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

/// Axis label of a 1-2-5 tick: "100 ns", "2 µs", "50 ms", "1 s".
std::string format_tick(double ns) {
  char buf[32];
  if (ns < 1e3) std::snprintf(buf, sizeof buf, "%.0f ns", ns);
  else if (ns < 1e6) std::snprintf(buf, sizeof buf, "%.0f µs", ns / 1e3);
  else if (ns < 1e9) std::snprintf(buf, sizeof buf, "%.0f ms", ns / 1e6);
  else std::snprintf(buf, sizeof buf, "%.0f s", ns / 1e9);
  return buf;
}

}  // namespace

std::string format_ns(double ns) {
  if (ns < 1e3) return fmt("%.0f ns", ns);
  if (ns < 1e4) return fmt("%.2f µs", ns / 1e3);
  if (ns < 1e6) return fmt("%.1f µs", ns / 1e3);
  if (ns < 1e7) return fmt("%.2f ms", ns / 1e6);
  if (ns < 1e9) return fmt("%.1f ms", ns / 1e6);
  return fmt("%.2f s", ns / 1e9);
}

// ---------------------------------------------------------------------------------------------
// JsonWriter

void JsonWriter::prefix(std::string_view key) {
  if (!first_.back()) out_ += ',';
  first_.back() = false;
  if (!key.empty()) {
    out_ += '"';
    append_escaped(key, out_);
    out_ += "\":";
  }
}

JsonWriter& JsonWriter::begin_object(std::string_view key) {
  prefix(key);
  out_ += '{';
  first_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::end_object() {
  first_.pop_back();
  out_ += '}';
  return *this;
}

JsonWriter& JsonWriter::begin_array(std::string_view key) {
  prefix(key);
  out_ += '[';
  first_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::end_array() {
  first_.pop_back();
  out_ += ']';
  return *this;
}

JsonWriter& JsonWriter::field(std::string_view key, std::string_view value) {
  prefix(key);
  out_ += '"';
  append_escaped(value, out_);
  out_ += '"';
  return *this;
}

JsonWriter& JsonWriter::field(std::string_view key, double value) {
  prefix(key);
  if (!std::isfinite(value)) {
    out_ += "null";
  } else {
    out_ += fmt("%.6g", value);
  }
  return *this;
}

JsonWriter& JsonWriter::field(std::string_view key, std::uint64_t value) {
  prefix(key);
  out_ += std::to_string(value);
  return *this;
}

JsonWriter& JsonWriter::field(std::string_view key, std::int64_t value) {
  prefix(key);
  out_ += std::to_string(value);
  return *this;
}

JsonWriter& JsonWriter::field(std::string_view key, bool value) {
  prefix(key);
  out_ += value ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::histogram(std::string_view key, const LogHistogram& h) {
  begin_object(key);
  field("unit", "ns");
  field("count", h.count());
  field("mean", h.mean());
  field("min", h.min());
  field("p50", h.percentile(50));
  field("p90", h.percentile(90));
  field("p99", h.percentile(99));
  field("p99_9", h.percentile(99.9));
  field("p99_99", h.percentile(99.99));
  field("max", h.max());
  return end_object();
}

// ---------------------------------------------------------------------------------------------
// Files and chart

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

void write_latency_svg(const std::string& path, const std::string& title, const std::string& subtitle,
                       const std::vector<ChartSeries>& series) {
  constexpr double kW = 960, kH = 560, kLeft = 80, kRight = 330, kTop = 70, kBottom = 60;
  const double plot_w = kW - kLeft - kRight, plot_h = kH - kTop - kBottom;
  static constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                            "#9467bd", "#8c564b", "#e377c2"};

  // x: log10(1 / (1 - p)), up to the deepest percentile any series can resolve (at most 99.999 %).
  double x_max = 2;
  double y_lo = 1e300, y_hi = 0;
  for (const auto& s : series) {
    if (s.histogram == nullptr || s.histogram->count() == 0) continue;
    x_max = std::max(x_max, std::min(5.0, std::ceil(std::log10(static_cast<double>(s.histogram->count())))));
    y_lo = std::min(y_lo, static_cast<double>(std::max<std::uint64_t>(s.histogram->min(), 1)));
    y_hi = std::max(y_hi, static_cast<double>(std::max<std::uint64_t>(s.histogram->max(), 1)));
  }
  if (y_hi == 0) y_lo = 1e3, y_hi = 1e6;
  const double ly_lo = std::floor(std::log10(y_lo)), ly_hi = std::max(ly_lo + 1, std::ceil(std::log10(y_hi)));
  const auto px = [&](double p) {  // p in [0, 1]
    const double x = p >= 1 ? x_max : std::min(x_max, std::log10(1.0 / (1.0 - p)));
    return kLeft + x / x_max * plot_w;
  };
  const auto py = [&](double ns) {
    const double l = std::log10(std::max(ns, 1.0));
    return kTop + plot_h - (l - ly_lo) / (ly_hi - ly_lo) * plot_h;
  };

  std::string svg;
  svg += fmt("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" ", kW) + fmt("height=\"%.0f\" ", kH) +
         "font-family=\"Helvetica,Arial,sans-serif\" font-size=\"12\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg += fmt("<text x=\"%.0f\" y=\"28\" font-size=\"16\" font-weight=\"bold\">", kLeft);
  append_xml(title, svg);
  svg += "</text>\n";
  svg += fmt("<text x=\"%.0f\" y=\"48\" fill=\"#555\">", kLeft);
  append_xml(subtitle, svg);
  svg += "</text>\n";

  // Grid and axes.
  for (int d = 0; d <= static_cast<int>(x_max); ++d) {
    const double x = kLeft + d / x_max * plot_w;
    static constexpr const char* kLabels[] = {"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"};
    svg += fmt("<line x1=\"%.1f\" ", x) + fmt("y1=\"%.1f\" ", kTop) + fmt("x2=\"%.1f\" ", x) +
           fmt("y2=\"%.1f\" stroke=\"#ddd\"/>\n", kTop + plot_h);
    svg += fmt("<text x=\"%.1f\" ", x) + fmt("y=\"%.1f\" text-anchor=\"middle\">", kTop + plot_h + 18) + kLabels[d] +
           "</text>\n";
  }
  for (int e = static_cast<int>(ly_lo); e <= static_cast<int>(ly_hi); ++e) {
    for (const int m : {1, 2, 5}) {
      const double v = m * std::pow(10.0, e);
      if (std::log10(v) > ly_hi + 1e-9) break;
      const double y = py(v);
      svg += fmt("<line x1=\"%.1f\" ", kLeft) + fmt("y1=\"%.1f\" ", y) + fmt("x2=\"%.1f\" ", kLeft + plot_w) +
             fmt("y2=\"%.1f\" stroke=\"", y) + (m == 1 ? "#ccc" : "#eee") + "\"/>\n";
      svg += fmt("<text x=\"%.1f\" ", kLeft - 6) + fmt("y=\"%.1f\" text-anchor=\"end\">", y + 4);
      append_xml(format_tick(v), svg);
      svg += "</text>\n";
    }
  }
  svg += fmt("<rect x=\"%.1f\" ", kLeft) + fmt("y=\"%.1f\" ", kTop) + fmt("width=\"%.1f\" ", plot_w) +
         fmt("height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n", plot_h);
  svg += fmt("<text x=\"%.1f\" ", kLeft + plot_w / 2) +
         fmt("y=\"%.1f\" text-anchor=\"middle\">percentile</text>\n", kH - 16);
  svg +=
      fmt("<text x=\"18\" y=\"%.1f\" ", kTop + plot_h / 2) +
      fmt("transform=\"rotate(-90 18 %.1f)\" text-anchor=\"middle\">latency (log scale)</text>\n", kTop + plot_h / 2);

  // Curves: a step per bucket, from the rank before it to the rank at its end.
  std::size_t k = 0;
  for (const auto& s : series) {
    if (s.histogram == nullptr || s.histogram->count() == 0) continue;
    const char* color = kColors[k % (sizeof kColors / sizeof kColors[0])];
    const double n = static_cast<double>(s.histogram->count());
    std::string points;
    double prev = 0;
    s.histogram->for_each_bucket([&](std::uint64_t value, std::uint64_t cumulative) {
      const double y = py(static_cast<double>(value));
      points += fmt("%.1f,", px(prev)) + fmt("%.1f ", y);
      const double q = static_cast<double>(cumulative) / n;
      points += fmt("%.1f,", px(q)) + fmt("%.1f ", y);
      prev = q;
    });
    svg += "<polyline fill=\"none\" stroke-width=\"2\" stroke=\"" + std::string(color) + "\" points=\"" + points +
           "\"/>\n";
    const double ly = kTop + 10 + static_cast<double>(k) * 58;
    const double lx = kLeft + plot_w + 16;
    svg += fmt("<rect x=\"%.1f\" ", lx) + fmt("y=\"%.1f\" width=\"14\" height=\"4\" fill=\"", ly) + color + "\"/>\n";
    svg += fmt("<text x=\"%.1f\" ", lx + 20) + fmt("y=\"%.1f\" font-weight=\"bold\">", ly + 6);
    append_xml(s.name, svg);
    svg += "</text>\n";
    const LogHistogram& h = *s.histogram;
    svg += fmt("<text x=\"%.1f\" ", lx + 20) + fmt("y=\"%.1f\" fill=\"#333\">", ly + 22);
    append_xml("p50 " + format_ns(static_cast<double>(h.percentile(50))) + "  p90 " +
                   format_ns(static_cast<double>(h.percentile(90))) + "  p99 " +
                   format_ns(static_cast<double>(h.percentile(99))),
               svg);
    svg += "</text>\n";
    svg += fmt("<text x=\"%.1f\" ", lx + 20) + fmt("y=\"%.1f\" fill=\"#333\">", ly + 38);
    append_xml("p99.9 " + format_ns(static_cast<double>(h.percentile(99.9))) + "  max " +
                   format_ns(static_cast<double>(h.max())) + "  n " + std::to_string(h.count()),
               svg);
    svg += "</text>\n";
    ++k;
  }
  svg += "</svg>\n";
  write_text_file(path, svg);
}

}  // namespace cdc::bench
