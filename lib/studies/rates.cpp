// rates.cpp -- convergence-rate fitting; see moerate/rates.hpp.
#include "moerate/studies/rates.hpp"

#include "moerate/core/numerics.hpp"
#include "moerate/core/text.hpp"

#include <algorithm>
#include <armadillo>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <numeric>

#include "moerate/core/error.hpp"
#include "moerate/core/rng.hpp"

namespace moerate {

namespace {

constexpr int n_models = 3;  // power, log_power, slow
const std::array<const char*, n_models> model_names = {"power", "log_power", "slow"};
const std::array<const char*, n_models> model_formulas = {"L ~ C n^(-e)", "L ~ C (log n / n)^e",
                                                          "L ~ C (log n)^(-e)"};
const char* criterion_text =
    "BIC = N log(RSS/N) + 2 log N of per-replicate log losses (Gaussian errors on log L; "
    "all models have 2 parameters, so the order is that of RSS); smallest BIC preferred";


// Regressor of each model: log L = c - e * x_model(n).
double model_x(int model, double log_n) {
  switch (model) {
    case 0: return log_n;
    case 1: return log_n - std::log(log_n);
    default: return std::log(log_n);
  }
}

double bic_of(double rss, std::size_t n_points) {
  const double n = static_cast<double>(n_points);
  const double r = std::max(rss, std::numeric_limits<double>::min());
  return n * std::log(r / n) + 2.0 * std::log(n);
}

// The usable rows of one table grouped by distinct n (ascending).
struct Groups {
  std::vector<double> sizes;                     // distinct n, ascending
  std::vector<std::vector<double>> log_loss;     // per size, the log losses
};

// Least squares y = c - e x for a fixed x: the thin QR of the (centred) design
// is computed once, so the many bootstrap refits with the same x (resampling
// within n keeps every size's count) cost two dot products and a 2 x 2
// triangular solve each.
class QrLine {
public:
  explicit QrLine(const std::vector<double>& x) {
    const char* fn = "fit_line";
    if (x.size() < 2) fail(fn, "number of points", "must be >= 2", x.size());
    const arma::vec xv(x);
    if (xv.max() == xv.min()) fail(fn, "x", "must take at least two distinct values", xv.min());
    x_bar_ = arma::mean(xv);
    A_.set_size(x.size(), 2);
    A_.col(0).ones();
    A_.col(1) = -(xv - x_bar_);
    if (!arma::qr_econ(Q_, R_, A_)) throw InvalidArgument("fit_line: QR factorisation failed");
  }
  std::size_t size() const { return A_.n_rows; }
  LineFit fit(const arma::vec& y) const {
    const arma::vec coef = arma::solve(arma::trimatu(R_), Q_.t() * y);
    const arma::vec resid = y - A_ * coef;
    LineFit f;
    f.exponent = coef(1);
    f.intercept = coef(0) + coef(1) * x_bar_;  // c - e (x - xbar) = (c + e xbar) - e x
    f.rss = arma::dot(resid, resid);
    f.n_points = A_.n_rows;
    return f;
  }

private:
  arma::mat A_, Q_, R_;
  double x_bar_ = 0;
};

// The fixed designs of the sizes [first, m): per-replicate fits of the three
// models, and the per-n (mean, median) fit.
struct Designs {
  std::size_t first = 0;
  std::vector<QrLine> replicate;       // one per model (only power when !full)
  std::optional<QrLine> per_size;      // when full
  Designs(const Groups& g, std::size_t first_size, bool full) : first(first_size) {
    std::vector<double> log_n;
    for (std::size_t s = first; s < g.sizes.size(); ++s)
      log_n.insert(log_n.end(), g.log_loss[s].size(), std::log(g.sizes[s]));
    for (int m = 0; m < (full ? n_models : 1); ++m) {
      std::vector<double> xm(log_n.size());
      for (std::size_t i = 0; i < log_n.size(); ++i) xm[i] = model_x(m, log_n[i]);
      replicate.emplace_back(xm);
    }
    if (full) {
      std::vector<double> xs;
      for (std::size_t s = first; s < g.sizes.size(); ++s) xs.push_back(std::log(g.sizes[s]));
      per_size.emplace(xs);
    }
  }
};

// Everything estimated from one (re)sample.
struct Estimates {
  double exponent = 0, intercept = 0;
  double exponent_mean = 0, exponent_median = 0;
  std::array<double, n_models> model_exponent{}, model_intercept{}, model_rss{};
  std::size_t n_points = 0;
};

// Estimates from the log losses of sizes [d.first, m) (resampled or not).
Estimates estimate(const Groups& g, const Designs& d) {
  arma::vec y(d.replicate[0].size());
  std::size_t k = 0;
  for (std::size_t s = d.first; s < g.sizes.size(); ++s)
    for (double v : g.log_loss[s]) y(k++) = v;
  Estimates est;
  est.n_points = y.n_elem;
  for (std::size_t m = 0; m < d.replicate.size(); ++m) {
    const LineFit f = d.replicate[m].fit(y);
    est.model_exponent[m] = f.exponent;
    est.model_intercept[m] = f.intercept;
    est.model_rss[m] = f.rss;
  }
  est.exponent = est.model_exponent[0];
  est.intercept = est.model_intercept[0];
  if (!d.per_size) return est;
  const std::size_t n_sizes = g.sizes.size() - d.first;
  arma::vec y_mean(n_sizes), y_median(n_sizes);
  for (std::size_t s = d.first; s < g.sizes.size(); ++s) {
    const auto& v = g.log_loss[s];
    // log of the mean loss, shifted by the max (log-sum-exp).
    const double mx = *std::max_element(v.begin(), v.end());
    double acc = 0;
    for (double l : v) acc += std::exp(l - mx);
    y_mean(s - d.first) = mx + std::log(acc / static_cast<double>(v.size()));
    y_median(s - d.first) = quantile(v, 0.5);  // log is monotone: log of the median
  }
  est.exponent_mean = d.per_size->fit(y_mean).exponent;
  est.exponent_median = d.per_size->fit(y_median).exponent;
  return est;
}

// Resample the replications within each size (sizes below first are left empty).
void resample(const Groups& g, std::size_t first, Rng& rng, Groups& r) {
  r.sizes = g.sizes;
  r.log_loss.resize(g.sizes.size());
  for (std::size_t s = first; s < g.sizes.size(); ++s) {
    const auto& v = g.log_loss[s];
    auto& out = r.log_loss[s];
    out.resize(v.size());
    for (auto& o : out) o = v[rng.integer(0, v.size() - 1)];
  }
}

std::vector<Estimates> bootstrap(const Groups& g, const Designs& d, int n_boot, std::uint64_t seed,
                                 std::uint64_t stream) {
  std::vector<Estimates> out(static_cast<std::size_t>(n_boot));
#pragma omp parallel
  {
    Groups r;
#pragma omp for schedule(static)
    for (int b = 0; b < n_boot; ++b) {
      Rng rng(derive_seed(seed, {stream, static_cast<std::uint64_t>(b)}));
      resample(g, d.first, rng, r);
      out[static_cast<std::size_t>(b)] = estimate(r, d);
    }
  }
  return out;
}

Interval percentile_interval(const std::vector<Estimates>& boot, double level,
                             double Estimates::*field, double point) {
  if (boot.empty()) return {point, point};
  std::vector<double> v;
  v.reserve(boot.size());
  for (const auto& e : boot) v.push_back(e.*field);
  const double alpha = 1.0 - level;
  return {quantile(v, alpha / 2), quantile(v, 1 - alpha / 2)};
}

void count_row(RowStatus st, double loss, bool exclude_capped, RateFit* acc, bool* use) {
  *use = false;
  if (st == RowStatus::failed) {
    if (acc) ++acc->n_failed;
    return;
  }
  if (st == RowStatus::uncertified) {
    if (acc) ++acc->n_uncertified;
    return;
  }
  if (std::isnan(loss)) {
    if (acc) ++acc->n_missing;
    return;
  }
  if (!(loss > 0) || std::isinf(loss)) {
    if (acc) ++acc->n_nonpositive;
    return;
  }
  if (st == RowStatus::capped) {
    if (acc) ++acc->n_capped;
    if (exclude_capped) return;
  }
  *use = true;
}

}  // namespace

// ---------------------------------------------------------------------------

RowStatus parse_row_status(const std::string& stop_reason) {
  const std::string s = trim(stop_reason);
  if (s == "converged" || s == "converged_relative") return RowStatus::ok;
  if (s == "stalled") return RowStatus::uncertified;
  if (s == "max_iter" || s == "not_run") return RowStatus::capped;
  if (s == "failed" || s == "non_finite") return RowStatus::failed;
  throw InvalidArgument("parse_row_status: stop_reason must be one of converged, converged_relative, "
                        "max_iter, not_run, stalled, non_finite, failed; got '" + s + "'");
}

std::string row_status_name(RowStatus s) {
  switch (s) {
    case RowStatus::ok: return "ok";
    case RowStatus::capped: return "capped";
    case RowStatus::uncertified: return "uncertified";
    default: return "failed";
  }
}

void LossTable::validate() const {
  const char* fn = "LossTable";
  if (rep.size() != n.size() && !rep.empty())
    fail(fn, "rep", "must have one entry per row (" + std::to_string(n.size()) + ")", rep.size());
  if (loss.size() != n.size())
    fail(fn, "loss", "must have one entry per row (" + std::to_string(n.size()) + ")", loss.size());
  if (!status.empty() && status.size() != n.size())
    fail(fn, "status", "must be empty or have one entry per row (" + std::to_string(n.size()) + ")",
         status.size());
  for (double v : n)
    if (!(v > 1) || !std::isfinite(v)) fail(fn, "sample size n", "must be finite and > 1", v);
}

void RateFitOptions::validate() const {
  const char* fn = "RateFitOptions";
  if (bootstrap < 0) fail(fn, "bootstrap", "must be >= 0", bootstrap);
  if (!(level > 0 && level < 1)) fail(fn, "level", "must be in (0, 1)", level);
  if (min_window_sizes < 2) fail(fn, "min_window_sizes", "must be >= 2", min_window_sizes);
  if (band_points < 2) fail(fn, "band_points", "must be >= 2", band_points);
  for (double q : window_starts)
    if (!(q >= 0 && q < 1)) fail(fn, "window start quantile", "must be in [0, 1)", q);
}

LineFit fit_line(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size())
    fail("fit_line", "y", "must have the length of x (" + std::to_string(x.size()) + ")", y.size());
  return QrLine(x).fit(arma::vec(y));
}


LossTable usable_rows(const LossTable& table, bool exclude_capped) {
  table.validate();
  LossTable out;
  for (std::size_t i = 0; i < table.size(); ++i) {
    const RowStatus st = table.status.empty() ? RowStatus::ok : table.status[i];
    bool use = false;
    count_row(st, table.loss[i], exclude_capped, nullptr, &use);
    if (!use) continue;
    out.n.push_back(table.n[i]);
    out.rep.push_back(table.rep.empty() ? static_cast<int>(i) : table.rep[i]);
    out.loss.push_back(table.loss[i]);
    out.status.push_back(st);
  }
  return out;
}

std::vector<SizeSummary> summarise_by_n(const LossTable& table, bool exclude_capped, double q_low,
                                        double q_high) {
  const LossTable u = usable_rows(table, exclude_capped);
  std::map<double, std::vector<double>> by_n;
  for (std::size_t i = 0; i < u.size(); ++i) by_n[u.n[i]].push_back(u.loss[i]);
  std::vector<SizeSummary> out;
  for (const auto& [n, v] : by_n) {
    SizeSummary s;
    s.n = n;
    s.n_reps = static_cast<int>(v.size());
    s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
    s.median = quantile(v, 0.5);
    s.q_low = quantile(v, q_low);
    s.q_high = quantile(v, q_high);
    out.push_back(s);
  }
  return out;
}

RateFit fit_rate(const LossTable& table, const RateFitOptions& opt) {
  opt.validate();
  table.validate();
  RateFit fit;
  fit.capped_excluded = opt.exclude_capped;
  fit.bootstrap = opt.bootstrap;
  fit.level = opt.level;
  fit.seed = opt.seed;
  fit.criterion = criterion_text;
  fit.n_rows = static_cast<int>(table.size());

  std::map<double, std::vector<double>> by_n;
  for (std::size_t i = 0; i < table.size(); ++i) {
    const RowStatus st = table.status.empty() ? RowStatus::ok : table.status[i];
    bool use = false;
    count_row(st, table.loss[i], opt.exclude_capped, &fit, &use);
    if (use) by_n[table.n[i]].push_back(std::log(table.loss[i]));
  }
  Groups g;
  for (auto& [n, v] : by_n) {
    g.sizes.push_back(n);
    g.log_loss.push_back(std::move(v));
    fit.n_used += static_cast<int>(g.log_loss.back().size());
  }
  fit.n_sizes = static_cast<int>(g.sizes.size());
  if (!g.sizes.empty()) {
    fit.n_min = g.sizes.front();
    fit.n_max = g.sizes.back();
  }
  if (g.sizes.size() < 2) {
    fit.note = "fewer than 2 distinct n with usable losses (" + std::to_string(fit.n_used) +
               " usable rows)";
    return fit;
  }
  fit.fitted = true;

  const Designs full_design(g, 0, true);
  const Estimates point = estimate(g, full_design);
  fit.exponent = point.exponent;
  fit.intercept = point.intercept;
  fit.exponent_mean = point.exponent_mean;
  fit.exponent_median = point.exponent_median;
  fit.exponent_logn_over_n = point.model_exponent[1];
  fit.slow_rate_exponent = point.model_exponent[2];

  const auto boot = bootstrap(g, full_design, opt.bootstrap, opt.seed, 0);
  const Interval ci = percentile_interval(boot, opt.level, &Estimates::exponent, point.exponent);
  fit.ci_low = ci.low;
  fit.ci_high = ci.high;
  fit.boot_exponents.reserve(boot.size());
  for (const auto& b : boot) fit.boot_exponents.push_back(b.exponent);
  fit.ci_mean = percentile_interval(boot, opt.level, &Estimates::exponent_mean, point.exponent_mean);
  fit.ci_median =
      percentile_interval(boot, opt.level, &Estimates::exponent_median, point.exponent_median);

  // Model comparison.
  std::array<int, n_models> wins{};
  for (const auto& b : boot) {
    int best = 0;
    for (int m = 1; m < n_models; ++m)
      if (b.model_rss[m] < b.model_rss[best]) best = m;
    ++wins[best];
  }
  double best_bic = std::numeric_limits<double>::infinity();
  for (int m = 0; m < n_models; ++m) {
    ModelComparison mc;
    mc.model = model_names[m];
    mc.formula = model_formulas[m];
    mc.exponent = point.model_exponent[m];
    mc.intercept = point.model_intercept[m];
    mc.rss = point.model_rss[m];
    mc.bic = bic_of(mc.rss, point.n_points);
    mc.bootstrap_support = boot.empty() ? 0.0 : static_cast<double>(wins[m]) / boot.size();
    if (mc.bic < best_bic) {
      best_bic = mc.bic;
      fit.preferred_model = mc.model;
    }
    fit.models.push_back(mc);
  }
  for (auto& mc : fit.models) mc.delta_bic = mc.bic - best_bic;

  // Confidence band of the power law.
  {
    const double l0 = std::log(fit.n_min), l1 = std::log(fit.n_max);
    std::vector<double> vals(boot.size());
    for (int i = 0; i < opt.band_points; ++i) {
      const double ln = l0 + (l1 - l0) * i / (opt.band_points - 1);
      BandPoint p;
      p.n = std::exp(ln);
      p.fit = std::exp(fit.intercept - fit.exponent * ln);
      if (boot.empty()) {
        p.low = p.high = p.fit;
      } else {
        for (std::size_t b = 0; b < boot.size(); ++b)
          vals[b] = boot[b].intercept - boot[b].exponent * ln;
        const double alpha = 1 - opt.level;
        p.low = std::exp(quantile(vals, alpha / 2));
        p.high = std::exp(quantile(vals, 1 - alpha / 2));
      }
      fit.band.push_back(p);
    }
  }

  // Window sensitivity.
  const std::size_t m = g.sizes.size();
  const std::size_t min_sizes = std::min<std::size_t>(static_cast<std::size_t>(opt.min_window_sizes), m);
  std::vector<std::size_t> seen;
  for (std::size_t w = 0; w < opt.window_starts.size(); ++w) {
    const double q = opt.window_starts[w];
    const auto first = static_cast<std::size_t>(std::floor(q * static_cast<double>(m)));
    if (m - first < min_sizes) continue;
    if (std::find(seen.begin(), seen.end(), first) != seen.end()) continue;
    seen.push_back(first);
    WindowRow row;
    row.start_quantile = q;
    row.n_min = g.sizes[first];
    row.n_max = g.sizes.back();
    row.n_sizes = static_cast<int>(m - first);
    for (std::size_t s = first; s < m; ++s) row.n_rows += static_cast<int>(g.log_loss[s].size());
    const Designs wd(g, first, false);
    const Estimates e = estimate(g, wd);
    row.exponent = e.exponent;
    const auto wb = bootstrap(g, wd, opt.bootstrap, opt.seed, 1 + w);
    const Interval wi = percentile_interval(wb, opt.level, &Estimates::exponent, e.exponent);
    row.ci_low = wi.low;
    row.ci_high = wi.high;
    fit.window.push_back(row);
  }

  // Warnings.
  bool all_single = true;
  for (const auto& v : g.log_loss) all_single = all_single && v.size() == 1;
  if (all_single && opt.bootstrap > 0)
    fit.warnings.push_back("one replicate per n: the within-n bootstrap interval is degenerate");
  if (opt.bootstrap == 0) fit.warnings.push_back("bootstrap = 0: intervals are the point estimates");
  if (fit.n_sizes < 3) fit.warnings.push_back("only 2 distinct n: the slope is not checkable");
  return fit;
}

std::optional<ExponentDifference> exponent_difference(const RateFit& a, const RateFit& b, double level) {
  if (!a.fitted || !b.fitted || a.boot_exponents.empty() || a.boot_exponents.size() != b.boot_exponents.size())
    return std::nullopt;
  std::vector<double> d(a.boot_exponents.size());
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = b.boot_exponents[i] - a.boot_exponents[i];
  const double alpha = 1.0 - level;
  return ExponentDifference{b.exponent - a.exponent, {quantile(d, alpha / 2), quantile(d, 1 - alpha / 2)}};
}

json RateFit::to_json() const {
  json j;
  j["fitted"] = fitted;
  if (!note.empty()) j["note"] = note;
  j["exponent"] = exponent;
  j["intercept"] = intercept;
  j["ci"] = {ci_low, ci_high};
  j["level"] = level;
  j["bootstrap"] = bootstrap;
  j["seed"] = seed;
  j["exponent_mean"] = exponent_mean;
  j["ci_mean"] = {ci_mean.low, ci_mean.high};
  j["exponent_median"] = exponent_median;
  j["ci_median"] = {ci_median.low, ci_median.high};
  j["exponent_logn_over_n"] = exponent_logn_over_n;
  j["slow_rate_exponent"] = slow_rate_exponent;
  j["preferred_model"] = preferred_model;
  j["criterion"] = criterion;
  j["models"] = json::array();
  for (const auto& m : models)
    j["models"].push_back({{"model", m.model}, {"formula", m.formula}, {"exponent", m.exponent},
                           {"intercept", m.intercept}, {"rss", m.rss}, {"bic", m.bic},
                           {"delta_bic", m.delta_bic}, {"bootstrap_support", m.bootstrap_support}});
  j["window"] = json::array();
  for (const auto& w : window)
    j["window"].push_back({{"start_quantile", w.start_quantile}, {"n_min", w.n_min},
                           {"n_max", w.n_max}, {"n_sizes", w.n_sizes}, {"n_rows", w.n_rows},
                           {"exponent", w.exponent}, {"ci", {w.ci_low, w.ci_high}}});
  j["band"] = json::array();
  for (const auto& b : band)
    j["band"].push_back({{"n", b.n}, {"fit", b.fit}, {"low", b.low}, {"high", b.high}});
  j["counts"] = {{"rows", n_rows},       {"used", n_used},       {"capped", n_capped},
                 {"failed", n_failed},   {"missing", n_missing}, {"nonpositive", n_nonpositive},
                 {"uncertified", n_uncertified},
                 {"sizes", n_sizes}};
  j["capped_excluded"] = capped_excluded;
  j["n_range"] = {n_min, n_max};
  j["warnings"] = warnings;
  return j;
}

// ---------------------------------------------------------------------------
// Results tables.

namespace {
std::optional<std::size_t> find_column(const CsvTable& t, const std::string& name) {
  for (std::size_t i = 0; i < t.header.size(); ++i)
    if (trim(t.header[i]) == name) return i;
  return std::nullopt;
}
const std::string& cell(const CsvTable& t, std::size_t row, std::size_t col, const std::string& source) {
  if (col >= t.rows[row].size())
    throw InputError(source, row + 2, 0,
                     "row has " + std::to_string(t.rows[row].size()) + " fields; expected " +
                         std::to_string(t.header.size()));
  return t.rows[row][col];
}
double parse_number(const std::string& text, bool allow_missing, const std::string& source,
                    std::size_t line, std::size_t col, const std::string& what) {
  const std::string s = trim(text);
  if (allow_missing && (s.empty() || s == "nan" || s == "NaN" || s == "NAN" || s == "NA" ||
                        s == "na" || s == "-nan"))
    return std::numeric_limits<double>::quiet_NaN();
  char* end = nullptr;
  errno = 0;
  const double v = s.empty() ? 0.0 : std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size())
    throw InputError(source, line, col, what + " is not a number; got '" + s + "'");
  return v;
}
}  // namespace

std::vector<std::string> metric_columns(const CsvTable& t) {
  std::vector<std::string> out;
  for (const auto& h : t.header) {
    const std::string s = trim(h);
    if (s.rfind("m.", 0) == 0 && s.size() > 2) out.push_back(s);
  }
  return out;
}

std::vector<std::string> resolve_metrics(const CsvTable& t, const std::vector<std::string>& requested) {
  const std::vector<std::string> all = metric_columns(t);
  if (requested.empty()) return all;
  std::vector<std::string> out;
  for (const auto& r0 : requested) {
    const std::string r = trim(r0);
    std::string hit;
    for (const auto& m : all)
      if (m == r || m == "m." + r) hit = m;
    if (hit.empty()) {
      std::string list;
      for (const auto& m : all) list += (list.empty() ? "" : ", ") + m;
      throw InvalidArgument("no metric column '" + r + "' in the results (metric columns: " +
                            (list.empty() ? std::string("none") : list) + ")");
    }
    if (std::find(out.begin(), out.end(), hit) == out.end()) out.push_back(hit);
  }
  return out;
}

std::vector<std::string> settings_of(const CsvTable& t) {
  const auto col = find_column(t, "setting");
  if (!col) return {""};
  std::vector<std::string> out;
  for (std::size_t r = 0; r < t.rows.size(); ++r) {
    const std::string s = trim(cell(t, r, *col, "results"));
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  }
  return out;
}

LossTable loss_table_from_results(const CsvTable& t, const std::string& metric,
                                  const std::string& setting, const std::string& source) {
  const auto n_col = find_column(t, "n");
  if (!n_col) throw InputError(source, 1, 0, "results table has no column 'n'");
  const auto m_col = find_column(t, metric);
  if (!m_col) throw InputError(source, 1, 0, "results table has no column '" + metric + "'");
  const auto s_col = find_column(t, "setting");
  const auto r_col = find_column(t, "rep");
  const auto stop_col = find_column(t, "stop_reason");
  const auto cert_col = find_column(t, "certified");
  LossTable out;
  for (std::size_t r = 0; r < t.rows.size(); ++r) {
    const std::size_t line = r + 2;
    if (s_col && trim(cell(t, r, *s_col, source)) != setting) continue;
    if (!s_col && !setting.empty()) continue;
    const double n = parse_number(cell(t, r, *n_col, source), false, source, line, *n_col + 1, "n");
    if (!(n > 1) || !std::isfinite(n))
      throw InputError(source, line, *n_col + 1, "n must be finite and > 1; got " + to_text(n));
    const double loss =
        parse_number(cell(t, r, *m_col, source), true, source, line, *m_col + 1, metric);
    int rep = static_cast<int>(out.n.size());
    if (r_col) {
      const double rv = parse_number(cell(t, r, *r_col, source), true, source, line, *r_col + 1, "rep");
      if (std::isfinite(rv)) rep = static_cast<int>(rv);
    }
    RowStatus st = RowStatus::ok;
    if (stop_col) {
      try {
        st = parse_row_status(cell(t, r, *stop_col, source));
      } catch (const InvalidArgument&) {
        throw InputError(source, line, *stop_col + 1,
                         "stop_reason must be one of converged, converged_relative, max_iter, not_run, stalled, "
                         "non_finite, failed; got '" + trim(t.rows[r][*stop_col]) + "'");
      }
    }
    if (cert_col && st == RowStatus::ok) {
      const std::string v = trim(cell(t, r, *cert_col, source));
      if (v == "0") st = RowStatus::uncertified;
      else if (v != "1" && !v.empty())
        throw InputError(source, line, *cert_col + 1, "certified must be 1, 0 or empty; got '" + v + "'");
    }
    out.n.push_back(n);
    out.rep.push_back(rep);
    out.loss.push_back(loss);
    out.status.push_back(st);
  }
  return out;
}

double parse_exponent(const std::string& text) {
  const std::string s = trim(text);
  const auto slash = s.find('/');
  auto num = [&](const std::string& p) {
    const std::string q = trim(p);
    char* end = nullptr;
    const double v = q.empty() ? 0.0 : std::strtod(q.c_str(), &end);
    if (q.empty() || end != q.c_str() + q.size() || !std::isfinite(v))
      throw InvalidArgument("parse_exponent: exponent must be a number or a fraction like 1/8; got '" +
                            s + "'");
    return v;
  };
  if (slash == std::string::npos) return num(s);
  const double d = num(s.substr(slash + 1));
  if (d == 0) throw InvalidArgument("parse_exponent: denominator must be non-zero; got '" + s + "'");
  return num(s.substr(0, slash)) / d;
}

std::map<std::string, double> parse_theory(const std::vector<std::string>& specs,
                                           const std::vector<std::string>& metrics) {
  std::map<std::string, double> out;
  std::vector<double> plain;
  for (const auto& s : specs) {
    const auto eq = s.find('=');
    if (eq == std::string::npos) {
      plain.push_back(parse_exponent(s));
    } else {
      const std::string name = trim(s.substr(0, eq));
      if (name.empty()) throw InvalidArgument("parse_theory: metric name missing in '" + s + "'");
      std::string key = name;
      if (std::find(metrics.begin(), metrics.end(), key) == metrics.end() &&
          std::find(metrics.begin(), metrics.end(), "m." + key) != metrics.end())
        key = "m." + key;
      if (std::find(metrics.begin(), metrics.end(), key) == metrics.end())
        throw InvalidArgument("parse_theory: theory given for '" + name +
                              "', which is not among the metrics");
      out[key] = parse_exponent(s.substr(eq + 1));
    }
  }
  if (plain.empty()) return out;
  if (plain.size() == 1) {
    for (const auto& m : metrics)
      if (!out.count(m)) out[m] = plain[0];
    return out;
  }
  if (plain.size() != metrics.size())
    throw InvalidArgument("parse_theory: " + std::to_string(plain.size()) +
                          " plain exponents given for " + std::to_string(metrics.size()) +
                          " metrics; give one per metric (in --metric order), one for all, or METRIC=E");
  for (std::size_t i = 0; i < plain.size(); ++i) out[metrics[i]] = plain[i];
  return out;
}

}  // namespace moerate
