#include "moerate/experts/linear_expert.hpp"

#include "moerate/core/error.hpp"

namespace moerate {

arma::rowvec LinearExpert::mean(const arma::mat& X, const arma::vec& eta) const {
  arma::rowvec h = eta.head(d_).t() * X;
  h += eta[d_];
  return h;
}

arma::mat LinearExpert::jacobian(const arma::mat& X, const arma::vec&) const {
  arma::mat J(d_ + 1, X.n_cols);
  J.rows(0, d_ - 1) = X;
  J.row(d_).ones();
  return J;
}

arma::mat LinearExpert::hessian(const arma::mat& X, const arma::vec&) const {
  return arma::zeros((d_ + 1) * (d_ + 1), X.n_cols);
}

arma::vec weighted_least_squares(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w) {
  const std::size_t d = X.n_rows, n = X.n_cols;
  const arma::rowvec sw = arma::sqrt(w);
  arma::mat Z(n, d + 1);
  Z.cols(0, d - 1) = (X.each_row() % sw).t();
  Z.col(d) = sw.t();
  const arma::vec ys = (y % sw).t();
  arma::vec beta;
  if (!arma::solve(beta, Z, ys, arma::solve_opts::no_approx)) beta.reset();
  return beta;
}

ExpertMStepResult LinearExpert::m_step(const arma::mat& X, const arma::rowvec& y,
                                       const arma::rowvec& w, arma::vec& eta,
                                       const ExpertMStepOptions&) const {
  ExpertMStepResult res;
  auto sse = [&](const arma::vec& e) {
    const arma::rowvec r = y - mean(X, e);
    return arma::accu(w % r % r);
  };
  res.sse_before = res.sse_after = sse(eta);
  if (arma::accu(w) <= 0) return res;
  const arma::vec cand = weighted_least_squares(X, y, w);
  if (cand.n_elem == eta.n_elem && cand.is_finite()) {
    const double s = sse(cand);
    if (s <= res.sse_before) {
      eta = cand;
      res.sse_after = s;
      res.accepted_steps = 1;
    }
  }
  return res;
}

json LinearExpert::to_json(const arma::vec& eta) const {
  return json{{"a", arma::conv_to<std::vector<double>>::from(eta.head(d_))}, {"b", eta[d_]}};
}

arma::vec LinearExpert::from_json(const json& j, const std::string& where) const {
  arma::vec eta(d_ + 1);
  eta.head(d_) = json_vector(j, "a", d_, where);
  eta[d_] = json_number(j, "b", where);
  return eta;
}

arma::vec LinearExpert::initial(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                                Rng&) const {
  arma::vec eta = weighted_least_squares(X, y, w);
  if (eta.n_elem != d_ + 1 || !eta.is_finite()) {
    eta.zeros(d_ + 1);
    eta[d_] = arma::accu(w % y) / std::max(arma::accu(w), 1e-300);
  }
  return eta;
}

MOERATE_REGISTER_EXPERT("linear", "linear experts a^T x + b (weighted least squares M-step)",
                        [](const json& spec, std::size_t d) -> std::shared_ptr<ExpertFamily> {
                          check_spec_keys(spec, {}, "linear");
                          return std::make_shared<LinearExpert>(d);
                        });

}  // namespace moerate
