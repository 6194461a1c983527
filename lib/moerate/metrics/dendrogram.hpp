// moerate/metrics/dendrogram.hpp -- the dendrogram of mixing measures of an
// over-fitted softmax-gated Gaussian MoE, and the number of experts it selects
// (Do, Do, McKinley, Terhorst and Nguyen 2024 for finite mixtures; Do Tien Hai,
// Mai, Nguyen, Ho, Nguyen and Drovandi 2025 for softmax-gated Gaussian MoE).
//
// Atoms (models.md section 1): weight p_i = exp(beta0_i) / sum_l exp(beta0_l)
// and theta_i = (beta1_i, eta_i, nu_i) as one vector. Starting from the K atoms
// of a fit, the pair with the smallest dissimilarity
//     d(i, j) = p_i p_j / (p_i + p_j) * |theta_i - theta_j|^r      (r = 2 by default)
// is merged into one atom with weight p_i + p_j (beta0 = log(e^beta0_i + e^beta0_j))
// and the weight-averaged parameters (p_i theta_i + p_j theta_j) / (p_i + p_j);
// d is the height of the merge. It is the cost, in the r-th power of the
// Wasserstein distance W_r, of moving the two atoms to their barycentre, the
// quantity the dendrogram papers merge by (as far as their formulas are known
// here; see docs/model-selection.md). Merging K - 1 times gives models with
// K, K - 1, ..., 1 experts; each level keeps its mean log-likelihood
// lbar(kappa) = l(kappa) / n on the data.
//
// Selection (the dendrogram selection criterion, DSC): with h(kappa) the
// height of the merge that takes the kappa-atom level to kappa - 1 atoms
// (h(1) = 0),
//     kappa_hat = argmax_kappa  h(kappa) + omega_n * lbar(kappa),
// omega_n = log n by default: it grows (levels below the truth, whose mean
// log-likelihood is lower by a constant, lose) but slower than sqrt(n) (levels
// above the truth, whose mean log-likelihood differs by O(1/sqrt n) at most, do
// not gain), while heights above the truth vanish and the height at the truth
// does not. Heights are in the units of theta (not scale-free): documented.
//
// Weights (an option). "beta0": p_i = exp(beta0_i) normalised and theta with
// beta1, as above (the papers' mixing measure; meaningful when the gates are
// bounded, e.g. fits with --ridge or --bound-gate-*). "mass" (the default):
// p_i = (1/n) sum_obs pi_i(x_obs), the atom's gate mass on the data, and
// theta_i = (eta_i, nu_i) without the gate location. Over-fitted softmax fits
// without bounds saturate their gates (|beta| of 1e3..1e6 measured on
// experiment A with k = 5), which makes exp(beta0) and beta1 meaningless as
// weights and distances while the gate masses stay interpretable. With
// "mass" the merged gate is also refitted: one gating M-step on the merged
// gate probabilities pi_i(x) + pi_j(x) over the data (their KL projection onto
// the gating family), started from the beta0/beta1 merge above; parameters are
// averaged with the mass weights.
//
// Only softmax gates are merged (their atoms are (beta0, beta1)); other
// families are refused with an InvalidArgument.
//
//   Dendrogram d = build_dendrogram(fit.model, D.X, D.y, DendrogramOptions{});
//   d.chosen_k;  d.levels[i].model;  d.merges[i].height;
#pragma once

#include <armadillo>
#include <string>
#include <vector>

#include "moerate/model/model.hpp"

namespace moerate {

struct DendrogramOptions {
  double power = 2;      // r in d(i, j): the W_r order of the merge cost (the papers' r = 2 for these models)
  double omega = 0;      // weight of the mean log-likelihood in the DSC; 0 = log n
  std::string weights = "mass";  // "mass" (gate mass on the data, theta = (eta, nu)) | "beta0" (the papers')
  void validate() const;
};

/// One merge: nodes a and b (leaves 0..K-1 are the fitted atoms, node K + m is
/// made by merge m) merged at `height`, from the level with `from_k` atoms.
struct DendrogramMerge {
  std::size_t a = 0, b = 0, node = 0, from_k = 0;
  double height = 0;
  std::vector<std::size_t> leaves;  // the fitted atoms (0-based) in the new node
};

struct DendrogramLevel {
  std::size_t k = 0;
  GaussianMoE model;
  double log_likelihood = 0;        // of the merged mixing measure (see the header)
  double model_log_likelihood = 0;  // of `model` (equal with beta0 weights; with mass, its gate is a projection)
  double mean_log_likelihood = 0;   // log_likelihood / n
  double height = 0;                // h(k): the merge that leaves this level (0 for k = 1)
  double dsc = 0;                   // h(k) + omega * lbar(k)
  std::vector<std::vector<std::size_t>> members;  // fitted atoms in each atom of the level
};

struct Dendrogram {
  std::vector<DendrogramLevel> levels;  // k = K, K-1, ..., 1
  std::vector<DendrogramMerge> merges;  // K - 1 merges in order
  std::size_t chosen_k = 0;
  double omega = 0, power = 2;
  std::string weights;
  std::vector<double> leaf_weights;     // p of the fitted atoms (the chosen weights)
  std::size_t n_obs = 0;
  json to_json() const;
};

/// The dissimilarity above for two atoms (weights >= 0; a zero weight gives 0).
double merge_dissimilarity(double p_i, const arma::vec& theta_i, double p_j, const arma::vec& theta_j,
                           double power = 2);
/// The same from log weights (exact for weights that underflow a double).
double log_merge_dissimilarity_weights(double log_p_i, const arma::vec& theta_i, double log_p_j,
                                       const arma::vec& theta_j, double power = 2);

/// theta_i = (beta1_i, eta_i, nu_i) of every atom, one column each (without
/// beta1 when with_location is false).
arma::mat atom_parameters(const GaussianMoE& m, bool with_location = true);
/// log of the gate masses (1/n) sum_obs pi_i(x_obs), one per atom.
arma::vec atom_log_masses(const GaussianMoE& m, const arma::mat& X);
/// Normalised weights p_i = exp(beta0_i) / sum exp(beta0_l), and their logs.
arma::vec atom_weights(const GaussianMoE& m);
arma::vec atom_log_weights(const GaussianMoE& m);

/// The model with experts i and j merged (k - 1 experts; i != j; softmax gates
/// only). Without X: exp(beta0) weights; with X: gate-mass weights and the
/// merged gate projected on the data (see above).
GaussianMoE merge_experts(const GaussianMoE& m, std::size_t i, std::size_t j, const arma::mat* X = nullptr);

/// The whole dendrogram of a fitted Gaussian MoE on its data.
Dendrogram build_dendrogram(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y,
                            const DendrogramOptions& opt = {});

}  // namespace moerate
