// moerate/model/bounds.hpp -- a compact parameter space (models.md section 9.4).
//
// Every rate theorem assumes a compact parameter set Theta; without it an
// over-fitted MLE may not exist (a near-empty atom's gate slope runs off to
// infinity). ParameterBounds describes the box
//     |beta0_i| <= gate_intercept,   |beta1_iu| (or |w_iu|) <= gate_slope,
//     |eta_iu| <= expert,            nu_min <= nu_i <= nu_max
// (infinity = unbounded, the default). box() turns it into lower/upper bounds on
// GaussianMoE::flat_params() (nu enters as log nu). Gate parameters are
// recognised by their names: "...beta0" is an intercept, "...beta1_u" and
// "...w_u" are slopes/centres; any other gate parameter (e.g. log_tau) is
// left unbounded.
//
// Estimators keep every iterate inside the box (EM projects each M-step so
// that its objective never decreases; the direct MLE works in a bounded
// reparametrisation) and report coordinates that end on a bound.
//
//   ParameterBounds b;  b.gate_slope = 50;  b.nu_min = 1e-3;
//   Box B = b.box(model);   // B.lower, B.upper sized like model.flat_params()
#pragma once

#include <armadillo>
#include <limits>
#include <string>
#include <vector>

#include "moerate/model/model.hpp"

namespace moerate {

/// Lower and upper bounds on a flat parameter vector (+-inf where free).
struct Box {
  arma::vec lower, upper;
  bool empty() const { return lower.is_empty(); }
  /// Whether theta lies in the box (within a relative slack of 1e-12).
  bool contains(const arma::vec& theta) const;
  /// Nearest point of the box (coordinate-wise clamp).
  arma::vec clamp(const arma::vec& theta) const;
  /// Largest t in [0, 1] with from + t (to - from) in the box (from must be inside).
  double max_step(const arma::vec& from, const arma::vec& to) const;
  /// Indices of coordinates within rel_tol of a finite bound.
  std::vector<std::size_t> active(const arma::vec& theta, double rel_tol = 1e-8) const;
};

struct ParameterBounds {
  static constexpr double kNone = std::numeric_limits<double>::infinity();
  double gate_intercept = kNone;  // |beta0_i| bound
  double gate_slope = kNone;      // |beta1_iu| (softmax-type) or |w_iu| (Laplace) bound
  double expert = kNone;          // |eta_iu| bound on every expert parameter
  double nu_min = 0;              // variance bounds (0 / inf = none beyond the floor)
  double nu_max = kNone;

  bool any() const;
  /// InvalidArgument naming the option (cli names) unless bounds are positive
  /// (or inf) and nu_min <= nu_max.
  void validate() const;
  /// Box on model.flat_params(); an empty Box when no bound is set.
  Box box(const GaussianMoE& model) const;
  /// {"gate_intercept": .., "gate_slope": .., "expert": .., "nu_min": .., "nu_max": ..}
  /// with absent keys for unset bounds.
  json to_json() const;
  /// From a study file's "bounds" object; `where` names it in errors.
  static ParameterBounds from_json(const json& j, const std::string& where);
};

}  // namespace moerate
