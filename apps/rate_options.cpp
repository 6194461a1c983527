#include "rate_options.hpp"

#include <algorithm>

#include "cli_common.hpp"
#include "moerate/core/error.hpp"
#include "moerate/plot/plot.hpp"
#include "moerate/studies/rates.hpp"

namespace moerate::cli {

void add_rate_selection_options(CLI::App* cmd, RateSelectionOptions& o) {
  cmd->add_option("--results", o.results, "Results CSV (from moerate sweep)")->required();
  cmd->add_option("--metric", o.metrics, "Metric column(s), e.g. m.loss or loss (default: every m.* column)");
  cmd->add_option("--setting", o.settings, "Setting(s) to use (default: every setting)");
  cmd->add_option("--theory", o.theory,
                  "Theoretical exponent(s) E of n^(-E): METRIC=E, or E per --metric in order, or one E for all "
                  "(fractions like 1/8 allowed)");
  cmd->add_option("--bootstrap", o.bootstrap, "Bootstrap resamples (replicates resampled within each n)")
      ->capture_default_str();
  cmd->add_option("--level", o.level, "Confidence level of the percentile intervals")->capture_default_str();
  moerate::cli::add_seed_option(cmd, o.seed, "Bootstrap seed (echoed in the output)");
  cmd->add_flag("--exclude-capped", o.exclude_capped,
                "Exclude rows whose fit hit the iteration cap (default: include and count them)");
  cmd->add_option("--threads", o.threads, "Threads for the bootstrap (0 = all; results do not depend on it)")
      ->capture_default_str();
}

RateSelection select_rates(const RateSelectionOptions& o) {
  if (o.bootstrap < 0) throw UsageError("--bootstrap must be >= 0; got " + std::to_string(o.bootstrap));
  if (!(o.level > 0 && o.level < 1)) throw UsageError("--level must be in (0, 1); got " + to_text(o.level));
  if (o.bootstrap > 1000000) throw UsageError("--bootstrap must be <= 1000000; got " + std::to_string(o.bootstrap));
  configure_threads(o.threads);

  RateSelection sel;
  sel.fit.bootstrap = o.bootstrap;
  sel.fit.level = o.level;
  sel.fit.seed = o.seed;
  sel.fit.exclude_capped = o.exclude_capped;
  sel.table = read_csv_table(o.results);
  try {
    sel.metrics = resolve_metrics(sel.table, o.metrics);
    sel.theory = parse_theory(o.theory, sel.metrics);
  } catch (const InvalidArgument& e) {
    throw UsageError(e.what());
  }
  if (sel.metrics.empty()) throw InputError(o.results, 1, 0, "no metric columns (names starting with 'm.')");
  sel.settings = settings_of(sel.table);
  if (!o.settings.empty()) {
    for (const auto& s : o.settings)
      if (std::find(sel.settings.begin(), sel.settings.end(), s) == sel.settings.end()) {
        std::string list;
        for (const auto& a : sel.settings) list += (list.empty() ? "'" : ", '") + a + "'";
        throw UsageError("--setting '" + s + "' is not in " + o.results + " (settings: " + list + ")");
      }
    sel.settings = o.settings;
  }
  return sel;
}

}  // namespace moerate::cli
