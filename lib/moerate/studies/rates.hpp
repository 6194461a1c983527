// moerate/studies/rates.hpp -- convergence-rate fitting (models.md section 8).
//
// Given losses L(n, r) over a grid of sample sizes n and replications r,
// fit the power law
//     log L(n, r) = c - e log n + error
// by least squares (QR on the design [1, -log n]; no normal equations) on the
// per-replicate values, and also on per-n means and per-n medians. The
// confidence interval for e is a percentile bootstrap that resamples the
// replications within each n (the design of n is kept fixed); replicate b
// uses its own engine seeded with derive_seed(seed, {stream, b}), so the
// interval is a pure function of the table and the seed (thread count does
// not matter).
//
// Alternatives, each with two parameters, fitted to the same per-replicate
// log losses:
//     power        L ~ C n^(-e)              log L = c - e log n
//     log_power    L ~ C (log n / n)^e       log L = c - e (log n - log log n)
//     slow         L ~ C (log n)^(-e)        log L = c - e log log n
// Criterion: BIC = N log(RSS / N) + 2 log N on the log scale (Gaussian errors
// on log L). All three have two parameters, so the ordering is that of RSS;
// the preferred model has the smallest BIC, and bootstrap_support is the
// fraction of bootstrap resamples in which each model has the smallest BIC.
//
// Window sensitivity: for each start quantile q of the distinct sizes
// n_(1) < ... < n_(m) (default q = 0, 0.1, ..., 0.6), refit on the sizes
// n >= n_(floor(q m) + 1) and report e with its bootstrap interval, instead of
// choosing a window silently.
//
// Row accounting (never averaged in silently):
//   failed     stop_reason failed / non_finite          -> excluded, counted
//   capped     stop_reason max_iter (or not_run)        -> included, counted
//                                                          (excluded with exclude_capped)
//   missing    loss empty / nan (metric not applicable) -> excluded, counted
//   nonpositive loss <= 0 or infinite (no logarithm)    -> excluded, counted
//
//   LossTable t;  // n, rep, loss, status: one entry per replicate
//   RateFitOptions o;  o.bootstrap = 2000;  o.seed = 1;
//   RateFit f = fit_rate(t, o);
//   std::cout << f.exponent << " [" << f.ci_low << ", " << f.ci_high << "]\n";
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "moerate/core/numerics.hpp"  // quantile
#include "moerate/io/csv.hpp"

namespace moerate {

using json = nlohmann::json;

/// Outcome of the estimator run that produced a loss (from the stop_reason column).
enum class RowStatus {
  ok,           // converged (and certified, when the table has a "certified" column)
  capped,       // hit the iteration cap (max_iter; not_run counts here too)
  failed,       // failed or non_finite: the loss is never used
  uncertified,  // stopped without meeting the convergence certificate (stalled, or
                // certified = 0): never used, always counted (models.md 9.3)
};
/// "converged"/"converged_relative" -> ok, "max_iter"/"not_run" -> capped,
/// "failed"/"non_finite" -> failed, "stalled" -> uncertified; throws
/// InvalidArgument for anything else.
RowStatus parse_row_status(const std::string& stop_reason);
std::string row_status_name(RowStatus s);

/// Losses of one metric in one setting: one entry per replicate (parallel vectors).
struct LossTable {
  std::vector<double> n;          // sample size (> 1)
  std::vector<int> rep;           // replication index (bookkeeping only)
  std::vector<double> loss;       // may be nan (missing) or <= 0 (counted, unused)
  std::vector<RowStatus> status;  // empty means every row is ok
  std::size_t size() const { return n.size(); }
  void validate() const;          // equal lengths, n finite and > 1
};

struct RateFitOptions {
  int bootstrap = 2000;              // resamples (issue default); 0 = no interval
  double level = 0.95;               // two-sided percentile interval
  std::uint64_t seed = 1;            // bootstrap seed (CLI default 1)
  bool exclude_capped = false;       // default: capped rows used and counted
  std::vector<double> window_starts = {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6};  // quantiles of distinct n
  int min_window_sizes = 3;          // fewest distinct n a window may have
  int band_points = 41;              // log-spaced points of the confidence band
  void validate() const;
};

/// Least-squares line log L = intercept - exponent * x.
struct LineFit {
  double intercept = 0, exponent = 0, rss = 0;
  std::size_t n_points = 0;
};
/// Fit y = c - e x by QR (arma::solve on [1, -x]); needs two distinct x.
LineFit fit_line(const std::vector<double>& x, const std::vector<double>& y);

struct Interval {
  double low = 0, high = 0;
};

struct WindowRow {
  double start_quantile = 0;  // q
  double n_min = 0, n_max = 0;
  int n_sizes = 0, n_rows = 0;
  double exponent = 0, ci_low = 0, ci_high = 0;
};

struct ModelComparison {
  std::string model;      // power | log_power | slow
  std::string formula;    // e.g. "L ~ C n^(-e)"
  double exponent = 0, intercept = 0, rss = 0, bic = 0, delta_bic = 0;
  double bootstrap_support = 0;  // fraction of resamples where this model has the least BIC
};

/// Pointwise bootstrap band of the fitted power law, L = exp(c - e log n).
struct BandPoint {
  double n = 0, fit = 0, low = 0, high = 0;
};

/// Per-n summary of the used rows (medians and quantiles for plots and tables).
struct SizeSummary {
  double n = 0;
  int n_reps = 0;
  double mean = 0, median = 0, q_low = 0, q_high = 0;
};

struct RateFit {
  bool fitted = false;            // false: too few usable sizes (see note)
  std::string note;
  // Per-replicate fit (the headline) and its bootstrap interval.
  double exponent = 0, intercept = 0, ci_low = 0, ci_high = 0;
  // Fits on per-n means and medians, with bootstrap intervals.
  double exponent_mean = 0, exponent_median = 0;
  Interval ci_mean, ci_median;
  // Alternatives and the comparison.
  double exponent_logn_over_n = 0, slow_rate_exponent = 0;
  std::string preferred_model;
  std::string criterion;
  std::vector<ModelComparison> models;
  std::vector<WindowRow> window;
  std::vector<BandPoint> band;
  /// The per-replicate exponent of each bootstrap draw, in draw order. Draw b
  /// resamples with the seed (seed, b), so two tables with the same sizes and
  /// replicate counts are resampled alike (a paired bootstrap of two settings
  /// simulated from the same seeds; exponent_difference).
  std::vector<double> boot_exponents;
  // Accounting.
  int n_rows = 0, n_used = 0, n_capped = 0, n_failed = 0, n_missing = 0, n_nonpositive = 0;
  int n_uncertified = 0;
  int n_sizes = 0;
  double n_min = 0, n_max = 0;
  bool capped_excluded = false;
  int bootstrap = 0;
  double level = 0;
  std::uint64_t seed = 0;
  std::vector<std::string> warnings;
  json to_json() const;
};

/// Fit the rate of one loss table. Never throws for too little data (fitted =
/// false with a note); throws InvalidArgument for a malformed table or options.
RateFit fit_rate(const LossTable& table, const RateFitOptions& opt = {});

/// The difference of two fitted exponents, b.exponent - a.exponent, with the
/// percentile interval (level) of the draw-by-draw differences of their
/// bootstrap exponents: the test of "a's error falls more slowly than b's"
/// that two overlapping intervals cannot give. Unavailable (nullopt) without
/// bootstrap draws or with different numbers of them.
struct ExponentDifference {
  double difference = 0;
  Interval ci;
};
std::optional<ExponentDifference> exponent_difference(const RateFit& a, const RateFit& b, double level);

/// The rows fit_rate uses (same accounting), e.g. for plotting.
LossTable usable_rows(const LossTable& table, bool exclude_capped);

/// Per-n mean, median and quantiles q_low, q_high (linear interpolation) of the
/// usable rows; sorted by n.
std::vector<SizeSummary> summarise_by_n(const LossTable& table, bool exclude_capped,
                                        double q_low = 0.1, double q_high = 0.9);


// ---------------------------------------------------------------------------
// Results tables (the CSV written by `moerate sweep`): a thin edge.

/// Columns whose names start with "m.", in header order.
std::vector<std::string> metric_columns(const CsvTable& t);
/// The metric columns named by `requested` ("m.loss" or "loss"); all of
/// metric_columns(t) when empty. Throws InvalidArgument naming the choices.
std::vector<std::string> resolve_metrics(const CsvTable& t, const std::vector<std::string>& requested);
/// Distinct values of the "setting" column in order of appearance ({""} if absent).
std::vector<std::string> settings_of(const CsvTable& t);
/// One metric's losses in one setting ("" with no setting column: all rows).
/// Requires columns n and the metric; uses rep and stop_reason when present.
/// `source` names the file in InputError messages (line = row index + 2).
LossTable loss_table_from_results(const CsvTable& t, const std::string& metric,
                                  const std::string& setting, const std::string& source = "results");

/// Parse an exponent: "0.5", "1/8", "-1/4" (a rate n^(-e) is given by e).
double parse_exponent(const std::string& text);
/// Theory specs: "METRIC=E" pairs, or plain "E" values matched to `metrics` by
/// position (one plain value applies to every metric); METRIC may omit "m.".
/// Throws InvalidArgument (also for a METRIC not in `metrics`).
std::map<std::string, double> parse_theory(const std::vector<std::string>& specs,
                                           const std::vector<std::string>& metrics);

}  // namespace moerate
