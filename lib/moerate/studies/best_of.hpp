// moerate/studies/best_of.hpp -- the best available estimate of the MLE per data
// set, when several settings fit the same data (experiments.md D).
//
// A sweep fits every (n, rep) data set of a truth once per setting; settings
// that differ only in their starts (k-means against near-truth) fit the same
// data. Over-fitted likelihoods have several local maxima that differ by O(1)
// nats at every n, and a fit certified by the score statistic is only a local
// one. For such a group of settings:
//   agreement  per data set, whether their certified log-likelihoods agree to
//              within `tol` nats, and which setting reached the largest;
//   best-of    per data set, the certified row with the largest log-likelihood,
//              copied under a new label (rows of data sets where no setting is
//              certified are copied uncertified, so `rates` counts them).
//
//   StartAgreement a;
//   CsvTable t2 = with_best_of(t, {"linear k=3", "linear k=3 near-truth"}, "linear k=3 best", 1e-3, &a);
#pragma once

#include <string>
#include <vector>

#include "moerate/io/csv.hpp"

namespace moerate {

struct StartAgreement {
  std::size_t datasets = 0;             // data sets where every setting has a certified row
  std::size_t agree = 0;                // ... whose log-likelihoods all lie within tol of the largest
  std::vector<std::size_t> best_count;  // per setting, data sets where it reached the largest (within tol)
  double median_gap = 0;                // median over those data sets of (largest - smallest) log-likelihood
  double max_gap = 0;
};

/// `t` (a sweep's results: columns setting, n, rep, log_likelihood, certified)
/// with rows labelled `new_label` appended as described above. Throws
/// InputError naming `source` and the column if one is missing.
CsvTable with_best_of(const CsvTable& t, const std::vector<std::string>& labels, const std::string& new_label,
                      double tol, StartAgreement* agreement = nullptr, const std::string& source = "results");

}  // namespace moerate
