// moerate/studies/builtin_studies.hpp -- the built-in convergence-rate studies
// (experiments.md A and B) as study files, and what each reports.
//
// builtin_study_config(name, scale) returns the study file (the JSON that
// `moerate sweep` reads; `moerate study NAME --print-config` prints it):
//   softmax-linear-exact  A1: experiment A's truth, k = 2
//   softmax-linear-over   A2: experiment A's truth, k = 3
//   linear-vs-ffn         B:  linear against one-hidden-unit tanh experts, k = 3
// at scale "quick" (minutes) or "paper" (200 sizes in [1e2, 1e5], 40 replications).
//
//   json cfg = builtin_study_config("softmax-linear-exact", "quick");
//   Study s = Study::from_json(cfg, "A1");
#pragma once

#include <string>
#include <vector>

#include "moerate/io/csv.hpp"
#include "moerate/studies/sweep.hpp"

namespace moerate {

/// The study file of a built-in study; InvalidArgument for an unknown name or scale.
json builtin_study_config(const std::string& name, const std::string& scale);

/// Metrics reported for a setting: the loss and the per-block errors that the
/// theory speaks of (exact.* for exact-fitted, over.* for over-fitted fits),
/// only those with a value in this setting.
std::vector<std::string> report_metrics(const CsvTable& t, const Study& study, const StudySetting& st);

}  // namespace moerate
