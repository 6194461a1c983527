#include "moerate/experts/polynomial_expert.hpp"

#include "moerate/core/error.hpp"
#include "moerate/experts/linear_expert.hpp"
#include "moerate/core/numerics.hpp"

namespace moerate {

PolynomialExpert::PolynomialExpert(std::size_t d, int degree) : ExpertFamily(d), p_(degree) {
  if (degree < 2) fail("PolynomialExpert", "degree p", "must be an integer >= 2", degree);
}

arma::rowvec PolynomialExpert::z(const arma::mat& X, const arma::vec& eta) const {
  arma::rowvec t = eta.head(d_).t() * X;
  t += eta[d_];
  return t;
}

arma::rowvec PolynomialExpert::mean(const arma::mat& X, const arma::vec& eta) const {
  return arma::pow(z(X, eta), p_);
}

arma::mat PolynomialExpert::jacobian(const arma::mat& X, const arma::vec& eta) const {
  const arma::rowvec g = p_ * arma::pow(z(X, eta), p_ - 1);
  arma::mat J(d_ + 1, X.n_cols);
  J.rows(0, d_ - 1) = X.each_row() % g;
  J.row(d_) = g;
  return J;
}

arma::mat PolynomialExpert::hessian(const arma::mat& X, const arma::vec& eta) const {
  const std::size_t q = d_ + 1;
  const arma::rowvec g2 = static_cast<double>(p_ * (p_ - 1)) * arma::pow(z(X, eta), p_ - 2);
  arma::mat V(q, X.n_cols);
  V.rows(0, d_ - 1) = X;
  V.row(d_).ones();
  arma::mat H(q * q, X.n_cols);
  for (std::size_t u = 0; u < q; ++u)
    for (std::size_t v = 0; v < q; ++v) H.row(u * q + v) = g2 % V.row(u) % V.row(v);
  return H;
}

json PolynomialExpert::to_json(const arma::vec& eta) const {
  return json{{"a", arma::conv_to<std::vector<double>>::from(eta.head(d_))}, {"b", eta[d_]}};
}

arma::vec PolynomialExpert::from_json(const json& j, const std::string& where) const {
  arma::vec eta(d_ + 1);
  eta.head(d_) = json_vector(j, "a", d_, where);
  eta[d_] = json_number(j, "b", where);
  return eta;
}

arma::vec PolynomialExpert::canonical(const arma::vec& eta) const {
  if (p_ % 2 != 0) return eta;
  // First non-zero entry of (b, a_1, ..., a_d) made positive.
  double lead = eta[d_];
  for (std::size_t s = 0; lead == 0 && s < d_; ++s) lead = eta[s];
  return lead < 0 ? arma::vec(-eta) : eta;
}

std::vector<arma::vec> PolynomialExpert::equivalents(const arma::vec& eta) const {
  if (p_ % 2 == 0) return {eta, arma::vec(-eta)};
  return {eta};
}

arma::vec PolynomialExpert::initial(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                                    Rng& rng) const {
  ExpertMStepOptions opt;
  opt.lm_steps = 50;
  const double inv_p = 1.0 / p_;
  arma::rowvec root(y.n_elem);
  for (std::size_t i = 0; i < y.n_elem; ++i) root[i] = (y[i] < 0 ? -1.0 : 1.0) * std::pow(std::abs(y[i]), inv_p);
  std::vector<arma::vec> cands;
  const arma::vec lin = weighted_least_squares(X, root, w);
  if (lin.n_elem == d_ + 1 && lin.is_finite()) {
    cands.push_back(lin);
    if (p_ % 2 == 0) {
      // Even p: the root is |z|, a V when z changes sign; also try the fit
      // of the root with the sign of the centred covariate's first direction.
      arma::vec flip = lin;
      flip.head(d_) *= -1.0;
      cands.push_back(flip);
    }
  }
  const double wsum = std::max(arma::accu(w), 1e-300);
  const double scale = std::pow(std::sqrt(arma::accu(w % y % y) / wsum) + 1e-12, inv_p);
  for (int t = 0; t < 4; ++t) {
    arma::vec e(d_ + 1);
    for (auto& v : e) v = rng.normal(0, scale);
    cands.push_back(e);
  }
  return best_refined(X, y, w, std::move(cands), opt, arma::vec(d_ + 1, arma::fill::ones));
}

MOERATE_REGISTER_EXPERT("polynomial", "polynomial experts (a^T x + b)^p; option p=P (integer >= 2, default 2)",
                        [](const json& spec, std::size_t d) -> std::shared_ptr<ExpertFamily> {
                          check_spec_keys(spec, {"p", "_"}, "polynomial");
                          const char* key = spec.contains("p") ? "p" : "_";
                          const std::size_t p = spec_integer(spec, key, 2, 2, "polynomial");
                          return std::make_shared<PolynomialExpert>(d, static_cast<int>(p));
                        });

}  // namespace moerate
