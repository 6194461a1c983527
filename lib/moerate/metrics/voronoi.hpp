// moerate/metrics/voronoi.hpp -- Voronoi losses between a fitted and a true mixing measure.
//
// models.md section 6. For true atoms theta*_j = (beta1*_j, eta*_j, nu*_j) with
// weights exp(beta0*_j), j = 1..k*, and fitted atoms theta_i, i = 1..k:
//   cells   A_j = { i : dist(theta_i, theta*_j) <= dist(theta_i, theta*_l) for all l }
//           (Euclidean on (location, eta, nu), beta0 excluded, ties to the smallest j;
//           eta compared through the nearest of ExpertFamily::equivalents())
//   W     = sum_j | sum_{i in A_j} exp(beta0_i) - exp(beta0*_j) |
//   S     = sum_{j: m_j = 1} exp(beta0_i) sum_B |D-B_ij|            (B: every block)
//   multi = D2 (k > k*): sum_{j: m_j >= 2} sum_{i in A_j} exp(beta0_i) sum_B |D-B_ij|^e_B(m_j)
//           D1 (k <= k*): the same atoms with e_B = 1 (the literature's D1)
//   loss  = W + S + multi
// with the exponents e_B of the table in section 6 (rbar(m) from VoronoiOptions,
// data not code). Blocks B: the gate location ("beta1" or "w"), every block of
// the expert family ("a", "b", "c", ...) and "nu" (dropped in the regression model).
//
// Translation and labels (section 6, steps 0-3): the truth is expressed relative
// to its last expert, the fit relative to the atoms standing for it; or, with
// infimum_translation, the infimum over translations (t0, t1) of the fit is
// taken numerically (Nelder-Mead started at the default, so never above it).
// docs/losses.md has the details and the term names.
//
//   auto L = moerate::voronoi_loss(truth, fit);          // L.total, L.terms["over.beta1"]
//   std::cout << L.to_json().dump(2);
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "moerate/metrics/distances.hpp"
#include "moerate/model/model.hpp"

namespace moerate {

struct VoronoiOptions {
  bool infimum_translation = false;  // default: the models.md section 6 convention (steps 0-3)
  // Cell size m -> rbar(m): rbar(2) = 4, rbar(3) = 6 (models.md section 6); larger
  // cells have no known value and must be supplied when a loss needs one.
  std::map<int, double> rbar = {{2, 4.0}, {3, 6.0}};
  // Design for each fitted atom's average gate weight (reported per atom, with
  // a flag when below negligible_gate); "" = not computed.
  std::string design;
  std::size_t design_mc = 2000;      // draws of x
  std::uint64_t design_seed = 1;
  double negligible_gate = 1e-3;     // an atom whose average gate weight is below this is negligible
  void validate() const;  // throws InvalidArgument (keys >= 2, values finite and > 0)
};

struct VoronoiLoss {
  std::string kind;        // "D1" (exact- or under-fitted) or "D2" (over-fitted)
  std::string convention;  // "reference-atoms" or "infimum"
  double total = 0;
  // Flat names (docs/losses.md): "weights", "singleton", "multi", "exact.B",
  // "cell.B" (max over multi-atom cells of the weighted power mean E_B of models.md
  // 9.2: the per-block error the theory bounds), "atommax.B" (unweighted max over
  // the atoms of multi-atom cells: not bounded by the theory), "cell<j>.B"
  // (singleton: the error; m >= 2: E_B), "cell<j>.atommax.B", "cell<j>.size",
  // "cell<j>.weight"; NaN where not applicable.
  // The set of names depends only on the truth, k and the families.
  std::map<std::string, double> terms;
  json detail;             // "cells", "exponents", "translation", "notes", ...
  /// {"loss": total, "kind", "convention", "terms", "cells", "exponents", ...}; NaN -> null.
  json to_json() const;
};

/// The Voronoi loss D1 (k <= k*) or D2 (k > k*) of `fit` against `truth`.
/// Throws InvalidArgument when the models are not comparable (dimension,
/// expert family, model kind, gate location) or a needed rbar is unknown.
VoronoiLoss voronoi_loss(const GaussianMoE& truth, const GaussianMoE& fit,
                         const VoronoiOptions& opt = {});

}  // namespace moerate
