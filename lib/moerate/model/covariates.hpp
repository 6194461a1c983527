// moerate/model/covariates.hpp -- which data columns the gate and the experts read
// (gate covariates; flexmix's "concomitant variables", issue 14).
//
//     p(y | x) = sum_i pi_i(x_g; beta_i) N(y; h(x_e; eta_i), nu_i),
//     x_g = the gate rows of x (d_g entries), x_e = the expert rows (d_e entries).
//
// Design. The data matrix X that the model, the estimators, the bootstrap and
// selection pass around stays ONE d x n matrix: the union of the columns either
// part reads, in a fixed order (the expert columns, then the gate columns the
// experts do not read). The model holds this small map and takes the rows each
// part needs just before it calls the gating or the expert family
// (GaussianMoE::gate_x / expert_x). Hence:
//  - no signature of the families, estimators, bootstrap, selection or the Python
//    module changes: they still pass one X, and resampling or blocking the
//    columns of X (bootstrap, parallel E-steps) keeps gate and expert rows together;
//  - the default map is empty ("shared"): gate_x(X) and expert_x(X) refer to X
//    itself, no copy and no change of arithmetic, so every existing model file,
//    call and result stays as it was, bit for bit;
//  - a distinct map copies the d_g x n and d_e x n rows once per call (rows of a
//    column-major matrix are not contiguous; the families take a whole matrix),
//    small beside the k x n work of each call; EM takes the copies once per run.
// The alternative, a pair (Xg, Xe) in every signature, would touch some forty
// functions and the Python module for the same numbers.
//
// Model file: "covariates": {"columns": ["x", "z"], "experts": ["x"], "gate": ["z"]}
// (absent: gate and experts read every column). "columns" may be omitted; it is
// then the expert columns followed by the gate-only columns.
//
//   Covariates c = Covariates::from_names({"x"}, {"z"});   // experts on x, gate on z
//   // c.columns() == {"x", "z"}, c.expert_rows() == {0}, c.gate_rows() == {1}
//   Covariates::Rows xg = c.gate_x(X);   // xg.mat() is the 1 x n row z of X
#pragma once

#include <armadillo>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moerate {

using json = nlohmann::json;

class Covariates {
public:
  /// The rows of X one part of the model reads: X itself (no copy) when the map
  /// is shared, else a copy of the rows. Neither copyable nor movable, so that a
  /// reference to X can never outlive the call that made it; hold it by name:
  ///   const Covariates::Rows xg = m.gate_x(X);   f(xg.mat());
  class Rows {
  public:
    Rows(const arma::mat& X, const arma::uvec& rows, bool all)
        : x_(all ? &X : nullptr), own_(all ? arma::mat() : arma::mat(X.rows(rows))) {}
    Rows(const Rows&) = delete;
    Rows& operator=(const Rows&) = delete;
    const arma::mat& mat() const { return x_ ? *x_ : own_; }

  private:
    const arma::mat* x_;
    arma::mat own_;
  };

  /// Shared: gate and experts read every row of X.
  Covariates() = default;
  /// From column names (non-empty, no duplicates). Equal lists give the shared map.
  static Covariates from_names(const std::vector<std::string>& expert, const std::vector<std::string>& gate);
  /// From rows of a design whose rows are named `columns`; every column must be
  /// read by the gate or the experts. Equal row lists 0..d-1 give the shared map.
  static Covariates from_rows(std::vector<std::string> columns, arma::uvec expert_rows, arma::uvec gate_rows);
  /// The "covariates" object of a model file (`where` names it in errors).
  static Covariates from_json(const json& j, const std::string& where);
  json to_json() const;  // null when shared

  bool shared() const { return columns_.empty(); }
  /// Rows of X (the union of the columns); 0 when shared (any d).
  std::size_t dim() const { return columns_.size(); }
  const std::vector<std::string>& columns() const { return columns_; }
  const arma::uvec& gate_rows() const { return gate_; }
  const arma::uvec& expert_rows() const { return expert_; }
  std::vector<std::string> gate_columns() const;
  std::vector<std::string> expert_columns() const;
  /// "gate z; experts x" (for messages).
  std::string describe() const;

  /// The gate's and the experts' covariates; X must have dim() rows unless shared.
  Rows gate_x(const arma::mat& X) const { return Rows(X, gate_, checked(X)); }
  Rows expert_x(const arma::mat& X) const { return Rows(X, expert_, checked(X)); }

  /// Same layout: same columns read by the same parts (names compared too).
  bool operator==(const Covariates& o) const;
  bool operator!=(const Covariates& o) const { return !(*this == o); }

private:
  bool checked(const arma::mat& X) const;  // true when shared; throws on a wrong row count
  std::vector<std::string> columns_;
  arma::uvec expert_, gate_;
};

}  // namespace moerate
