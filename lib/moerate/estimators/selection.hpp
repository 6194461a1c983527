// moerate/estimators/selection.hpp -- choosing the number of experts by
// information criteria over a range of k (moerate select).
//
// For each k in [k_min, k_max] the data are fitted with fit() (restarts in
// parallel, seeds derived from (seed, start): the row of k is the fit that
// `moerate fit -k K --seed S` gives). With l the maximised log-likelihood,
// p the number of free parameters, n the number of observations and R the
// k x n posterior responsibilities of the fitted model,
//     AIC = -2 l + 2 p,   BIC = -2 l + p log n,
//     ICL = BIC + 2 EN,   EN = -sum_ij R_ij log R_ij   (0 log 0 = 0)
// (ICL in its entropy form, McLachlan and Peel 2000 section 6.10; Biernacki,
// Celeux and Govaert 2000 use the MAP labels instead). Lower is better.
//
// Degenerate fits (never picked silently): a fit is degenerate when its
// certificate (estimators/certificate) reports a near-empty atom, a variance
// on the floor, or fewer observations than parameters, or when a variance is
// below tiny_variance * var(y). Each criterion picks the k of its smallest
// value among non-degenerate fits; when a degenerate fit has an even smaller
// value, the pick records it (overall_k) and the table says so.
//
//   SelectOptions o;  o.k_min = 1;  o.k_max = 4;  o.fit.n_starts = 10;
//   SelectionResult s = select_experts(D.X, D.y, o);
//   std::cout << s.table();
#pragma once

#include <armadillo>
#include <string>
#include <utility>
#include <vector>

#include "moerate/estimators/fit.hpp"

namespace moerate {

/// Parse a k range "A:B" (A <= B) or a single "K"; InvalidArgument naming
/// `option` for an empty, reversed or non-numeric range or k < 1.
std::pair<std::size_t, std::size_t> parse_k_range(const std::string& text, const std::string& option = "--experts");

/// -sum_ij R_ij log R_ij over a k x n responsibility matrix (0 log 0 = 0).
double classification_entropy(const arma::mat& R);

struct SelectOptions {
  std::size_t k_min = 1, k_max = 4;  // the range of k (inclusive)
  FitOptions fit{};                  // every fit's options; n_experts is set per k
  double tiny_variance = 1e-3;       // a variance below this * var(y) makes a fit degenerate
                                     // (tone, k = 4: 2e-5 against var(y) = 0.078)
  void validate() const;
};

struct SelectionRow {
  std::size_t k = 0;
  double log_likelihood = 0;
  std::size_t n_params = 0;
  double aic = 0, bic = 0, icl = 0, entropy = 0;
  std::vector<std::string> flags;    // certificate flags plus "tiny_variance"
  bool degenerate = false;
  bool certified = false;
  std::string stop_reason;
  double min_variance_ratio = 0;     // min_j nu_j / var(y)
};

struct CriterionPick {
  std::string criterion;             // "aic" | "bic" | "icl"
  std::size_t k = 0;                 // best non-degenerate k (0 = every fit degenerate)
  std::size_t overall_k = 0;         // best k over all fits
  bool overall_degenerate = false;   // the overall best is degenerate (and differs from k)
};

struct SelectionResult {
  std::vector<SelectionRow> rows;
  std::vector<FitResult> fits;       // one per row
  std::vector<CriterionPick> picks;  // aic, bic, icl
  std::size_t n_obs = 0;
  double var_y = 0;
  double seconds = 0;
  json to_json() const;              // rows, picks, and every fitted model
  std::string csv() const;           // one row per k
  std::string table() const;         // human table with the picks
};

/// The picks of the three criteria from rows (exposed for tests).
std::vector<CriterionPick> pick_criteria(const std::vector<SelectionRow>& rows);

/// Fit every k of the range and tabulate the criteria. X d x n, y 1 x n.
SelectionResult select_experts(const arma::mat& X, const arma::rowvec& y, const SelectOptions& opt);

}  // namespace moerate
