// moerate/plot/plot.hpp -- log-log convergence figures through gnuplot.
//
// One panel shows, for each series (a metric in a setting), on log-log axes:
//   - every usable replicate as a faint point (jittered by a factor
//     exp(U(-j, j)) along n so replicates at one n do not pile up);
//   - the median of each n with quantile bars (default 10%-90% of replicates;
//     stated in the legend), dodged slightly along n when series overlap;
//   - the fitted power law L = exp(c - e log n) (per-replicate least squares,
//     rates.hpp) with its pointwise bootstrap confidence band;
//   - if a theoretical exponent E is given, the line L_t(n) = L_hat(n_mid)
//     (n / n_mid)^(-E), anchored at the fitted value at the geometric middle
//     n_mid = sqrt(n_min n_max) of the sizes;
//   - a legend entry "label: e = 0.52 [0.48, 0.56]".
// Several panels are drawn side by side (gnuplot multiplot) with one shared
// y range, and a series keeps its colour across panels (colour key).
//
// gnuplot runs as a subprocess on a script written in a temporary directory;
// the figure is written to a temporary name beside the target and renamed
// into place, so a failed run never leaves a partial file. The terminal
// follows the extension: .png (pngcairo), .svg (svg), .pdf (pdfcairo).
//
//   PlotPanel lin = panel_from_results(table, "linear k=3", {"m.beta1", "m.a"},
//                                      {{"m.beta1", 1.0 / 8}, {"m.a", 1.0 / 4}}, {});
//   PlotPanel ffn = panel_from_results(table, "ffn k=3", {"m.beta1", "m.a"},
//                                      {{"m.beta1", 1.0 / 4}, {"m.a", 1.0 / 4}}, {});
//   plot_side_by_side(lin, ffn, "linear-vs-ffn.png", PlotOptions{});
#pragma once

#include <armadillo>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "moerate/io/csv.hpp"
#include "moerate/estimators/selection.hpp"
#include "moerate/metrics/dendrogram.hpp"
#include "moerate/studies/rates.hpp"

namespace moerate {

struct PlotSeries {
  std::string label;              // legend label, e.g. "m.beta1"
  std::string colour_key;         // series with one key share a colour ("" = label)
  LossTable data;                 // all rows; the usable ones are drawn
  RateFit fit;                    // fit_rate(data, ...)
  std::optional<double> theory;   // E of a theory line n^(-E)
};

struct PlotPanel {
  std::string title;              // panel title ("" = none)
  std::vector<PlotSeries> series;
};

struct PlotOptions {
  std::string title;                   // figure title ("" = none)
  std::string x_label = "sample size n";
  std::string y_label = "loss";
  double bar_low = 0.10;               // quantile bars: 10%-90% of replicates
  double bar_high = 0.90;
  bool exclude_capped = false;         // which rows are drawn; match the fit's option
  double jitter = 0.04;                // replicate jitter: factor exp(U(-j, j)) along n
  int width = 0;                       // pixels (png; svg/pdf scale from it); 0 = 1000 per panel + 100
  int height = 0;                      // 0 = 820 (one panel) or 860
  std::string font = "Helvetica";      // cairo font family
  int font_size = 0;                   // 0 = 18 (one panel) or 17 (several)
  std::string gnuplot = "gnuplot";     // program, looked up on PATH
  std::string save_script;             // also copy the gnuplot script here ("" = no)
  int columns = 0;                     // panels per row (0 = all in one row)
  bool shared_y = true;                // one y range for every panel (false: each from its data)
  std::string key = "below";           // legend "below" each panel or to its "right", smaller font
  void validate() const;
};

/// The gnuplot script (data inline) that draws `panels` into `output` with the
/// terminal chosen from the extension of `terminal_hint` (defaults to output).
std::string gnuplot_script(const std::vector<PlotPanel>& panels, const std::string& output,
                           const PlotOptions& opt, const std::string& terminal_hint = "");

/// Draw panels side by side into out_path (.png, .svg or .pdf). Throws
/// InvalidArgument for bad input, std::runtime_error if gnuplot is missing or fails.
void plot_panels(const std::vector<PlotPanel>& panels, const std::string& out_path,
                 const PlotOptions& opt = {});

/// Run gnuplot on script_for(tmp) -- a script that writes its figure to the
/// path tmp -- and rename the figure into out_path (.png, .svg or .pdf); a
/// failure leaves no partial file. Shared by every figure of the toolkit.
void render_gnuplot(const std::function<std::string(const std::string&)>& script_for,
                    const std::string& out_path, const std::string& gnuplot = "gnuplot",
                    const std::string& save_script = "");

/// Two panels side by side (e.g. linear vs ffn experts), shared y axis range.
void plot_side_by_side(const PlotPanel& left, const PlotPanel& right, const std::string& out_path,
                       const PlotOptions& opt = {});

/// One panel from a results table: each metric of `setting` fitted with
/// fit_rate(., fit_options); metrics without a usable value are skipped (their
/// names are appended to *skipped when given). Labels are the metric names
/// without "m."; prefix_setting = true makes them "metric (setting)".
PlotPanel panel_from_results(const CsvTable& table, const std::string& setting,
                             const std::vector<std::string>& metrics,
                             const std::map<std::string, double>& theory,
                             const RateFitOptions& fit_options, const std::string& title = "",
                             bool prefix_setting = false, const std::string& source = "results",
                             std::vector<std::string>* skipped = nullptr);

/// A fitted model over its data, one covariate (moerate plot-fit): top panel the
/// data, each expert's mean h_j(x) and the predictive mean; bottom panel the gate
/// weights pi_j(x). Rows of `means` and `gates` are experts, columns follow `grid`.
struct FitFigure {
  arma::rowvec x, y;                 // the data
  arma::rowvec grid;                 // covariate grid of the curves
  arma::mat means, gates;            // k x grid
  arma::rowvec predictive_mean;      // f(grid)
  std::string x_label = "x", y_label = "y";
};

/// Draw a FitFigure into out_path (.png, .svg or .pdf); titles and labels are
/// escaped, the legend stands outside the plotting area.
void plot_fit(const FitFigure& fig, const std::string& out_path, const PlotOptions& opt = {});

/// "1/8" for 0.125, "0.3" otherwise (fractions with denominators up to 24).
std::string exponent_label(double e);

/// Criteria against k (moerate select): AIC, BIC and ICL, degenerate fits ringed,
/// each criterion's pick marked.
void plot_selection(const SelectionResult& s, const std::string& out_path, const PlotOptions& opt = {});

/// The dendrogram of mixing measures (moerate dendrogram): merges on a log height
/// axis (drawn monotone: a merge never below its children), the cut at the chosen
/// k; below, the mean log-likelihood and the DSC of each level.
void plot_dendrogram(const Dendrogram& d, const std::string& out_path, const PlotOptions& opt = {});

}  // namespace moerate
