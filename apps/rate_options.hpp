// apps/rate_options.hpp -- the options `rates` and `plot` share: which results
// file, metrics, settings and theory exponents, and the bootstrap that gives
// the intervals. Written once so the two commands read and check them alike.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "moerate/io/csv.hpp"
#include "moerate/studies/rates.hpp"

namespace moerate::cli {

struct RateSelectionOptions {
  std::string results;
  std::vector<std::string> metrics, settings, theory;
  int bootstrap = 2000;          // percentile intervals settle by ~2000 resamples
  double level = 0.95;
  std::uint64_t seed = 1;
  bool exclude_capped = false;   // default: capped fits are included and counted
  int threads = 0;               // 0 = all cores; results do not depend on it
};

/// Registers --results, --metric, --setting, --theory, --bootstrap, --level,
/// --seed, --exclude-capped and --threads on cmd.
void add_rate_selection_options(CLI::App* cmd, RateSelectionOptions& o);

/// The results table and what to fit in it, validated (UsageError on bad
/// flags; InputError naming the file when it has no metric columns).
struct RateSelection {
  CsvTable table;
  std::vector<std::string> metrics, settings;
  std::map<std::string, double> theory;
  RateFitOptions fit;  // bootstrap, level, seed, exclude_capped from the options
};
/// Checks the options, configures the threads and reads the results file.
RateSelection select_rates(const RateSelectionOptions& o);

}  // namespace moerate::cli
