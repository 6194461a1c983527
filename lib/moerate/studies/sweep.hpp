// moerate/studies/sweep.hpp -- convergence-rate studies: simulate, fit, measure, over a
// grid of sample sizes and replications (models.md section 8).
//
// A study (docs/formats.md, "Study file") names one or more fit *settings*,
// each with its true model, fitted k, families, estimator and initialisation.
// The grid of n is log-spaced by default. One task = (n index, replication,
// setting); its data seed is derive_seed(seed, {n_index, rep, truth_index})
// (settings with the same truth see the same data: paired comparisons) and
// its fit seed derive_seed(seed, {n_index, rep, setting, 1}). Results are
// therefore identical whatever the thread count or sharding (apart from the
// wall-time column).
//
// Output: one CSV row per task (columns in results_header()); rows are
// appended and flushed as tasks finish, so a killed run loses at most the
// tasks in flight, and `resume` skips finished tasks. At the end the file is
// rewritten sorted (temporary file, then rename).
//
//   Study s = Study::from_json(read_json_file("study.json"), "study.json");
//   SweepOptions o;  o.threads = 2;
//   run_sweep(s, "results.csv", o);
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "moerate/estimators/fit.hpp"
#include "moerate/model/model.hpp"
#include "moerate/metrics/voronoi.hpp"

namespace moerate {

struct StudySetting {
  std::string label;            // "setting" column, e.g. "linear k=3"
  std::size_t truth_index = 0;  // index into Study::truths
  FitOptions fit;               // k, families, estimator, init, starts, EM options
};

struct Study {
  std::string name;
  std::vector<GaussianMoE> truths;
  std::vector<std::string> truth_names;
  std::string design = "uniform:0,1";   // x per coordinate; grid:LO,HI = the original code's design
  std::vector<std::size_t> n_grid;      // sample sizes
  int replications = 10;
  std::uint64_t seed = 1;
  std::vector<StudySetting> settings;
  bool distances = false;               // also Hellinger / TV / L2 (Monte Carlo)
  std::size_t distance_mc = 500;        // x draws for the distances
  VoronoiOptions voronoi{};
  json source;                          // the study file as read (echoed in outputs)

  static Study from_json(const json& j, const std::string& source_name);
  std::size_t n_tasks() const { return n_grid.size() * replications * settings.size(); }
};

/// Log-spaced integer grid from lo to hi with `count` distinct sizes.
std::vector<std::size_t> log_grid(std::size_t lo, std::size_t hi, std::size_t count);

struct SweepOptions {
  int threads = 0;              // 0 = all cores (OpenMP); results do not depend on it
  bool resume = false;          // skip tasks already in the output file
  std::size_t shard = 0;        // run tasks with index % n_shards == shard
  std::size_t n_shards = 1;
  bool progress = true;         // progress with ETA on stderr
  CancelHook cancel{};          // polled before each task and inside each fit; empty: never
  void validate() const;
};

struct SweepSummary {
  std::size_t tasks_total = 0, tasks_run = 0, tasks_skipped = 0, tasks_failed = 0, capped = 0;
  std::size_t uncertified = 0;  // fits whose certificate fails (capped ones included)
  double seconds = 0;
  std::vector<std::string> first_errors;  // the first few task failures, for messages
};

std::vector<std::string> results_header(const Study& s);
/// Runs the study's tasks, writing out_csv. When opt.cancel stops it, the
/// tasks finished so far are kept in out_csv (sorted; `resume` continues it)
/// and Cancelled is thrown.
SweepSummary run_sweep(const Study& s, const std::string& out_csv, const SweepOptions& opt);

/// Merge shard outputs (same header) into one sorted file; duplicates of a
/// task (setting, n, rep) are an error unless identical.
void merge_results(const std::vector<std::string>& inputs, const std::string& out_csv);

}  // namespace moerate
