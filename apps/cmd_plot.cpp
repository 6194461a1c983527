// moerate plot: log-log convergence figure through gnuplot (moerate/plot.hpp).
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli_common.hpp"
#include "rate_options.hpp"
#include "moerate/io/csv.hpp"
#include "moerate/core/error.hpp"
#include "moerate/plot/plot.hpp"
#include "moerate/studies/rates.hpp"

namespace {

// "10-90" -> (0.10, 0.90); "iqr" -> (0.25, 0.75).
std::pair<double, double> parse_bars(const std::string& text) {
  if (text == "iqr" || text == "IQR") return {0.25, 0.75};
  const auto dash = text.find('-');
  if (dash != std::string::npos) {
    char* e1 = nullptr;
    char* e2 = nullptr;
    const std::string a = text.substr(0, dash), b = text.substr(dash + 1);
    const double lo = std::strtod(a.c_str(), &e1), hi = std::strtod(b.c_str(), &e2);
    if (!a.empty() && !b.empty() && *e1 == '\0' && *e2 == '\0' && lo >= 0 && lo < hi && hi <= 100)
      return {lo / 100, hi / 100};
  }
  throw moerate::cli::UsageError("--bars must be LOW-HIGH in percent (e.g. 10-90) or iqr; got '" + text + "'");
}

}  // namespace

void add_plot_command(CLI::App& app) {
  struct Opts {
    moerate::cli::RateSelectionOptions sel;
    std::string out, title, layout = "overlay", bars = "10-90", gnuplot = "gnuplot", save_script, y_label = "loss";
    int width = 0, height = 0, font_size = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("plot", "Log-log figure of losses against n with fitted rates and theory lines");
  moerate::cli::add_rate_selection_options(cmd, o->sel);
  cmd->add_option("--out", o->out, "Figure file: .png, .svg or .pdf")->required();
  cmd->add_option("--title", o->title, "Figure title");
  cmd->add_option("--layout", o->layout,
                  "overlay: every setting in one panel; panels: one panel per setting, side by side")
      ->check(CLI::IsMember({"overlay", "panels"}))
      ->capture_default_str();
  cmd->add_option("--bars", o->bars, "Quantile bars around the per-n median: LOW-HIGH percent, or iqr")
      ->capture_default_str();
  cmd->add_option("--ylabel", o->y_label, "Label of the y axis")->capture_default_str();
  cmd->add_option("--width", o->width, "Width in pixels (default 1100, or 1000 per panel + 100)");
  cmd->add_option("--height", o->height, "Height in pixels (default 820, or 860 with panels)");
  cmd->add_option("--font-size", o->font_size, "Font size in points (default 18, or 17 with panels)");
  cmd->add_option("--gnuplot", o->gnuplot, "gnuplot program")->capture_default_str();
  cmd->add_option("--save-script", o->save_script, "Also save the gnuplot script (data inline) here");
  moerate::cli::set_example(cmd,
                            "moerate plot --results sweep.csv --metric beta1 a --theory 1/8 1/4 "
                            "--layout panels --out rates.png");

  cmd->callback([o]() {
    using namespace moerate;
    using cli::UsageError;
    PlotOptions po;
    po.title = o->title;
    po.y_label = o->y_label;
    std::tie(po.bar_low, po.bar_high) = parse_bars(o->bars);
    po.exclude_capped = o->sel.exclude_capped;
    po.width = o->width;
    po.height = o->height;
    po.font_size = o->font_size;
    po.gnuplot = o->gnuplot;
    po.save_script = o->save_script;
    try {
      po.validate();
    } catch (const InvalidArgument& e) {
      throw UsageError(e.what());
    }
    {
      std::string ext = o->out.size() >= 4 ? o->out.substr(o->out.size() - 4) : "";
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
      if (ext != ".png" && ext != ".svg" && ext != ".pdf")
        throw UsageError("--out must end in .png, .svg or .pdf; got '" + o->out + "'");
    }
    const cli::RateSelectionOptions& so = o->sel;
    cli::check_out(o->out, {so.results});
    if (!o->save_script.empty()) cli::check_out(o->save_script, {so.results, o->out}, "--save-script");
    const cli::RateSelection sel = cli::select_rates(so);
    const CsvTable& table = sel.table;
    const std::vector<std::string>& metrics = sel.metrics;
    const std::vector<std::string>& settings = sel.settings;
    const std::map<std::string, double>& theory = sel.theory;

    RateFitOptions fo = sel.fit;
    fo.window_starts = {0.0};  // the figure needs the full fit only

    std::vector<PlotPanel> panels;
    std::vector<std::string> skipped;
    const bool overlay = o->layout == "overlay";
    const bool several = settings.size() > 1;
    for (const auto& s : settings) {
      std::vector<std::string> sk;
      PlotPanel p = panel_from_results(table, s, metrics, theory, fo, overlay ? "" : s,
                                       overlay && several, so.results, &sk);
      for (const auto& m : sk) skipped.push_back((s.empty() ? "" : s + ": ") + m);
      if (overlay && !panels.empty()) {
        for (auto& ser : p.series) panels.front().series.push_back(std::move(ser));
      } else if (!p.series.empty() || !overlay) {
        panels.push_back(std::move(p));
      }
    }
    panels.erase(std::remove_if(panels.begin(), panels.end(), [](const PlotPanel& p) { return p.series.empty(); }),
                 panels.end());
    if (panels.empty()) throw std::runtime_error("no usable losses for the chosen metrics and settings");
    if (overlay && !several && !settings.front().empty()) panels.front().title = settings.front();

    plot_panels(panels, o->out, po);
    std::cout << "moerate plot: wrote " << o->out << " (" << panels.size() << " panel"
              << (panels.size() > 1 ? "s" : "") << "; seed " << so.seed << ", bootstrap " << so.bootstrap
              << ", bars " << o->bars << (o->bars == "iqr" ? "" : "%") << " of replicates"
              << (so.exclude_capped ? ", capped rows excluded" : ", capped rows included") << ")\n";
    for (const auto& p : panels)
      for (const auto& s : p.series) {
        std::cout << "  " << (p.title.empty() ? "" : p.title + ": ") << s.label;
        if (s.fit.fitted) {
          char buf[128];
          std::snprintf(buf, sizeof buf, ": e = %.3f [%.3f, %.3f]", s.fit.exponent, s.fit.ci_low, s.fit.ci_high);
          std::cout << buf;
          if (s.theory) std::cout << ", theory " << exponent_label(*s.theory);
        } else {
          std::cout << ": not fitted (" << s.fit.note << ")";
        }
        std::cout << "; used " << s.fit.n_used << ", capped " << s.fit.n_capped << ", failed "
                  << s.fit.n_failed << "\n";
      }
    if (!skipped.empty()) {
      std::cout << "  no values (not drawn):";
      for (const auto& s : skipped) std::cout << " " << s;
      std::cout << "\n";
    }
  });
}
