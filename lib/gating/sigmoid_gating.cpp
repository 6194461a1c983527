#include "moerate/gating/sigmoid_gating.hpp"

#include "moerate/core/error.hpp"
#include "moerate/core/json_fields.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/model/response.hpp"

namespace moerate {

namespace {

// log_sigmoid: model/response.hpp's (the same values in every bit as the
// -log1p(exp(-z)) / z - log1p(exp(z)) pair this file had).
/// sigmoid(z) without overflow.
double sigmoid(double z) {
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}


}  // namespace

SigmoidGating::SigmoidGating(std::size_t k, std::size_t d)
    : Gating(k, d), beta0_(k, arma::fill::zeros), beta1_(d, k, arma::fill::zeros) {}

std::string SigmoidGating::description() const {
  return "unnormalised sigmoid gates sigmoid(beta1_i^T x + beta0_i), no reference (regression model only)";
}

arma::mat SigmoidGating::log_weights(const arma::mat& X) const {
  arma::mat Z = beta1_.t() * X;
  Z.each_col() += beta0_;
  Z.transform([](double z) { return log_sigmoid(z); });
  return Z;
}

arma::vec SigmoidGating::log_weights_vjp(const arma::mat& X, const arma::mat& C) const {
  arma::mat Z = beta1_.t() * X;
  Z.each_col() += beta0_;
  Z.transform([](double z) { return sigmoid(-z); });  // d log sigmoid(z) / dz
  const arma::mat D = C % Z;                          // k x n
  const arma::vec g0 = arma::sum(D, 1);
  const arma::mat g1 = D * X.t();                     // k x d
  arma::vec g(n_params());
  for (std::size_t i = 0; i < k_; ++i) {
    g[i * (d_ + 1)] = g0[i];
    g.subvec(i * (d_ + 1) + 1, i * (d_ + 1) + d_) = g1.row(i).t();
  }
  return g;
}

arma::vec SigmoidGating::params() const {
  arma::vec t(n_params());
  for (std::size_t i = 0; i < k_; ++i) {
    t[i * (d_ + 1)] = beta0_[i];
    t.subvec(i * (d_ + 1) + 1, i * (d_ + 1) + d_) = beta1_.col(i);
  }
  return t;
}

void SigmoidGating::set_params(const arma::vec& theta) {
  const std::string fn = "SigmoidGating::set_params";
  if (theta.n_elem != n_params())
    fail(fn, "parameter vector length", "must be " + std::to_string(n_params()), theta.n_elem);
  if (!theta.is_finite()) throw InvalidArgument(fn + ": parameters must be finite");
  for (std::size_t i = 0; i < k_; ++i) {
    beta0_[i] = theta[i * (d_ + 1)];
    beta1_.col(i) = theta.subvec(i * (d_ + 1) + 1, i * (d_ + 1) + d_);
  }
}

std::vector<std::string> SigmoidGating::param_names() const {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < k_; ++i) {
    const std::string e = "expert" + std::to_string(i + 1) + ".";
    names.push_back(e + "beta0");
    for (std::size_t u = 0; u < d_; ++u) names.push_back(e + "beta1_" + std::to_string(u + 1));
  }
  return names;
}

json SigmoidGating::gate_json(std::size_t i) const {
  return json{{"beta0", beta0_[i]}, {"beta1", arma::conv_to<std::vector<double>>::from(beta1_.col(i))}};
}

void SigmoidGating::set_gate_json(std::size_t i, const json& gate, const std::string& where) {
  if (i >= k_) fail("SigmoidGating::set_gate_json", "expert index", "must be < " + std::to_string(k_), i);
  const double b0 = json_number(gate, "beta0", where);
  const arma::vec b1 = json_vector(gate, "beta1", d_, where);
  beta0_[i] = b0;
  beta1_.col(i) = b1;
}

void SigmoidGating::permute(const std::vector<std::size_t>& order) {
  check_order(order, k_, "SigmoidGating::permute");
  arma::vec b0(k_);
  arma::mat b1(d_, k_);
  for (std::size_t i = 0; i < k_; ++i) {
    b0[i] = beta0_[order[i]];
    b1.col(i) = beta1_.col(order[i]);
  }
  beta0_ = std::move(b0);
  beta1_ = std::move(b1);
}

MOERATE_REGISTER_GATING("sigmoid",
                        "unnormalised sigmoid gates sigmoid(beta1^T x + beta0), no reference (regression model only)",
                        [](const json& spec, std::size_t k, std::size_t d) -> std::unique_ptr<Gating> {
                          for (const auto& [key, v] : spec.items())
                            if (key != "family")
                              throw InvalidArgument("gating sigmoid: unknown option '" + key + "' (it has none)");
                          return std::make_unique<SigmoidGating>(k, d);
                        });

}  // namespace moerate
