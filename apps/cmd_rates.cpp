// moerate rates: convergence-rate exponents with bootstrap intervals from a
// results table (models.md section 8; moerate/rates.hpp).
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli_common.hpp"
#include "rate_options.hpp"
#include "moerate/io/csv.hpp"
#include "moerate/core/error.hpp"
#include "moerate/model/model.hpp"
#include "moerate/plot/plot.hpp"
#include "moerate/studies/rates.hpp"
#include "moerate/io/files.hpp"

namespace {

std::string pad(const std::string& s, std::size_t w) {
  return s.size() >= w ? s + " " : s + std::string(w - s.size(), ' ');
}

// Every row of the setting lacks a value for this metric (e.g. a cell that
// only exists in over-fitted settings).
bool all_missing(const moerate::LossTable& t) {
  for (std::size_t i = 0; i < t.size(); ++i)
    if (!std::isnan(t.loss[i]) && (t.status.empty() || t.status[i] != moerate::RowStatus::failed))
      return false;
  return true;
}

}  // namespace

void add_rates_command(CLI::App& app) {
  struct Opts {
    moerate::cli::RateSelectionOptions sel;
    std::string json_out;
    bool windows = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "rates", "Fit convergence rates L ~ C n^(-e) per metric, with bootstrap intervals");
  moerate::cli::add_rate_selection_options(cmd, o->sel);
  cmd->add_option("--json", o->json_out, "Write the full results (JSON) here");
  cmd->add_flag("--windows", o->windows, "Also print the window-sensitivity table of each fit");
  moerate::cli::set_example(
      cmd, "moerate rates --results sweep.csv --metric loss beta1 --theory 1/2 1/8 --json rates.json");

  cmd->callback([o]() {
    using namespace moerate;
    using cli::UsageError;
    const cli::RateSelectionOptions& so = o->sel;
    if (!o->json_out.empty()) cli::check_out(o->json_out, {so.results}, "--json");
    const cli::RateSelection sel = cli::select_rates(so);
    const CsvTable& table = sel.table;
    const std::vector<std::string>& metrics = sel.metrics;
    const std::vector<std::string>& settings = sel.settings;
    const std::map<std::string, double>& theory = sel.theory;

    RateFitOptions fo = sel.fit;
    fo.validate();

    const std::string level_pct = cli::fixed(100 * so.level, 0) + "%";
    const std::string policy =
        std::string("rows with stop_reason failed/non_finite, uncertified rows (stalled, or certified = 0: the "
                    "fit did not reach the optimum to the stated score tolerance) and rows whose loss is empty, nan, "
                    "<= 0 or infinite are excluded and counted; rows with stop_reason max_iter (capped) are ") +
        (so.exclude_capped ? "excluded (--exclude-capped) and counted" : "included and counted");
    std::cout << "moerate rates: " << so.results << " (seed " << so.seed << ", bootstrap " << so.bootstrap
              << ", " << level_pct << " percentile intervals, replicates resampled within n)\n"
              << "fit: log L = c - e log n, least squares on per-replicate losses\n"
              << "rows: " << policy << "\n"
              << "model choice (best): power n^-e | log_power (log n/n)^e | slow (log n)^-e, by "
                 "BIC on per-replicate log losses (smallest wins)\n";

    json out;
    out["command"] = "rates";
    out["version"] = MOERATE_VERSION;
    out["results"] = so.results;
    out["seed"] = so.seed;
    out["bootstrap"] = so.bootstrap;
    out["level"] = so.level;
    out["exclude_capped"] = so.exclude_capped;
    out["row_policy"] = policy;
    out["fits"] = json::array();

    for (const auto& setting : settings) {
      std::cout << "\nsetting " << (setting.empty() ? std::string("(none)") : "\"" + setting + "\"") << "\n";
      std::ostringstream head;
      head << "  " << pad("metric", 16) << pad("e", 8) << pad(level_pct + " CI", 18) << pad("theory", 12)
           << pad("e(median)", 10) << pad("e over windows", 17) << pad("best", 10) << pad("n_used", 7)
           << pad("capped", 7) << pad("uncert", 7) << pad("failed", 7) << "missing";
      std::cout << head.str() << "\n";
      std::vector<std::string> not_applicable;
      for (const auto& metric : metrics) {
        const LossTable lt = loss_table_from_results(table, metric, setting, so.results);
        if (lt.size() == 0 || all_missing(lt)) {
          not_applicable.push_back(metric);
          continue;
        }
        const RateFit f = fit_rate(lt, fo);
        json entry = f.to_json();
        entry["setting"] = setting;
        entry["metric"] = metric;
        std::string theory_text = "-";
        if (auto it = theory.find(metric); it != theory.end()) {
          const double e = it->second;
          const bool inside = f.fitted && f.ci_low <= e && e <= f.ci_high;
          entry["theory"] = e;
          entry["theory_in_ci"] = inside;
          theory_text = exponent_label(e) + (f.fitted ? (inside ? " in" : " OUT") : "");
        } else {
          entry["theory"] = nullptr;
        }
        std::ostringstream row;
        row << "  " << pad(metric, 16);
        if (f.fitted) {
          double wlo = f.exponent, whi = f.exponent;
          for (const auto& w : f.window) {
            wlo = std::min(wlo, w.exponent);
            whi = std::max(whi, w.exponent);
          }
          row << pad(cli::fixed(f.exponent), 8) << pad("[" + cli::fixed(f.ci_low) + ", " + cli::fixed(f.ci_high) + "]", 18)
              << pad(theory_text, 12) << pad(cli::fixed(f.exponent_median), 10)
              << pad(cli::fixed(wlo) + ".." + cli::fixed(whi), 17) << pad(f.preferred_model, 10);
        } else {
          row << pad("not fitted: " + f.note, 75);
        }
        row << pad(std::to_string(f.n_used), 7) << pad(std::to_string(f.n_capped), 7)
            << pad(std::to_string(f.n_uncertified), 7)
            << pad(std::to_string(f.n_failed), 7) << f.n_missing + f.n_nonpositive;
        std::cout << row.str() << "\n";
        for (const auto& w : f.warnings) std::cout << "    warning (" << metric << "): " << w << "\n";
        if (o->windows && f.fitted) {
          std::cout << "    window: " << pad("from q", 8) << pad("n_min", 9) << pad("n_max", 9)
                    << pad("sizes", 7) << pad("rows", 7) << pad("e", 8) << level_pct << " CI\n";
          for (const auto& w : f.window)
            std::cout << "            " << pad(cli::fixed(w.start_quantile, 2), 8) << pad(to_text(w.n_min), 9)
                      << pad(to_text(w.n_max), 9) << pad(std::to_string(w.n_sizes), 7)
                      << pad(std::to_string(w.n_rows), 7) << pad(cli::fixed(w.exponent), 8) << "["
                      << cli::fixed(w.ci_low) << ", " << cli::fixed(w.ci_high) << "]\n";
        }
        out["fits"].push_back(std::move(entry));
      }
      if (!not_applicable.empty()) {
        std::cout << "  no values in this setting (not applicable):";
        for (const auto& m : not_applicable) std::cout << " " << m;
        std::cout << "\n";
      }
    }
    std::cout << "\n(missing = empty/nan or non-positive losses; 'in'/'OUT': theory inside/outside the CI;"
                 " e over windows: range of e as the smallest sizes are dropped, --windows for the table)\n";
    if (!o->json_out.empty()) {
      write_json_file(o->json_out, out);
      std::cout << "wrote " << o->json_out << "\n";
    }
  });
}
