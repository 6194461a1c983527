#include "moerate/gating/laplace_gating.hpp"

#include "moerate/core/error.hpp"
#include "moerate/core/json_fields.hpp"
#include "moerate/core/numerics.hpp"

namespace moerate {

LaplaceGating::LaplaceGating(std::size_t k, std::size_t d)
    : Gating(k, d), beta0_(k, arma::fill::zeros), w_(d, k, arma::fill::zeros) {}

std::string LaplaceGating::description() const {
  return "Laplace gate Softmax(-|x - w_i| + beta0_i), w free, beta0 of the last expert 0";
}

arma::mat LaplaceGating::scores(const arma::mat& X) const {
  arma::mat S(k_, X.n_cols);
  for (std::size_t i = 0; i < k_; ++i) {
    arma::mat diff = X.each_col() - w_.col(i);
    S.row(i) = beta0_[i] - arma::sqrt(arma::sum(arma::square(diff), 0));
  }
  return S;
}

arma::mat LaplaceGating::log_weights(const arma::mat& X) const {
  arma::mat S = scores(X);
  normalise_log_cols(S);
  return S;
}

arma::vec LaplaceGating::log_weights_vjp(const arma::mat& X, const arma::mat& C) const {
  // d/dtheta sum_ij C_ij log pi_ij = sum_ij D_ij dS_ij/dtheta, D = C - pi * colsum(C).
  const arma::mat P = exp_entries(log_weights(X));
  const arma::rowvec s = arma::sum(C, 0);
  const arma::mat D = C - P.each_row() % s;
  arma::vec g(n_params());
  std::size_t p = 0;
  for (std::size_t i = 0; i < k_; ++i) {
    if (i + 1 < k_) g[p++] = arma::accu(D.row(i));
    arma::mat diff = X.each_col() - w_.col(i);  // x - w_i
    arma::rowvec r = arma::sqrt(arma::sum(arma::square(diff), 0));
    arma::rowvec coef = D.row(i);
    for (std::size_t j = 0; j < r.n_elem; ++j) coef[j] = r[j] > 0 ? coef[j] / r[j] : 0.0;
    g.subvec(p, p + d_ - 1) = diff * coef.t();
    p += d_;
  }
  return g;
}

arma::vec LaplaceGating::params() const {
  arma::vec t(n_params());
  std::size_t p = 0;
  for (std::size_t i = 0; i < k_; ++i) {
    if (i + 1 < k_) t[p++] = beta0_[i];
    t.subvec(p, p + d_ - 1) = w_.col(i);
    p += d_;
  }
  return t;
}

void LaplaceGating::set_params(const arma::vec& theta) {
  const std::string fn = "LaplaceGating::set_params";
  if (theta.n_elem != n_params())
    fail(fn, "parameter vector length", "must be " + std::to_string(n_params()), theta.n_elem);
  if (!theta.is_finite()) throw InvalidArgument(fn + ": parameters must be finite");
  std::size_t p = 0;
  for (std::size_t i = 0; i < k_; ++i) {
    beta0_[i] = i + 1 < k_ ? theta[p++] : 0.0;
    w_.col(i) = theta.subvec(p, p + d_ - 1);
    p += d_;
  }
}

std::vector<std::string> LaplaceGating::param_names() const {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < k_; ++i) {
    const std::string e = "expert" + std::to_string(i + 1) + ".";
    if (i + 1 < k_) names.push_back(e + "beta0");
    for (std::size_t u = 0; u < d_; ++u) names.push_back(e + "w_" + std::to_string(u + 1));
  }
  return names;
}

json LaplaceGating::gate_json(std::size_t i) const {
  return json{{"beta0", beta0_[i]}, {"w", arma::conv_to<std::vector<double>>::from(w_.col(i))}};
}

void LaplaceGating::set_gate_json(std::size_t i, const json& gate, const std::string& where) {
  if (i >= k_) fail("LaplaceGating::set_gate_json", "expert index", "must be < " + std::to_string(k_), i);
  if (!gate.is_object()) throw InvalidArgument(where + ": expected an object {\"beta0\", \"w\"}; got " + gate.dump());
  if (gate.contains("beta1"))
    throw InvalidArgument(where + ": a Laplace gate has a location \"w\", not \"beta1\"");
  const double b0 = json_number(gate, "beta0", where);
  const arma::vec w = json_vector(gate, "w", d_, where);
  beta0_[i] = b0;
  w_.col(i) = w;
}

void LaplaceGating::permute(const std::vector<std::size_t>& order) {
  check_order(order, k_, "LaplaceGating::permute");
  arma::vec b0(k_);
  arma::mat w(d_, k_);
  for (std::size_t i = 0; i < k_; ++i) {
    b0[i] = beta0_[order[i]];
    w.col(i) = w_.col(order[i]);
  }
  beta0_ = std::move(b0);
  w_ = std::move(w);
  normalise();
}

void LaplaceGating::translate(double t0, const arma::vec& t1) {
  if (t1.n_elem != 0 && arma::any(t1 != 0))
    throw InvalidArgument("laplace: translate: w has no translation invariance; only t0 (a beta0 shift) is allowed");
  beta0_ += t0;
}

MOERATE_REGISTER_GATING("laplace", "Laplace gate Softmax(-|x - w_i| + beta0_i); w free, beta0_k = 0",
                        [](const json& spec, std::size_t k, std::size_t d) -> std::unique_ptr<Gating> {
                          for (const auto& [key, v] : spec.items())
                            if (key != "family")
                              throw InvalidArgument("gating laplace: unknown option '" + key + "' (it has none)");
                          return std::make_unique<LaplaceGating>(k, d);
                        });

}  // namespace moerate
