#include "moerate/ffn_expert.hpp"

#include "moerate/error.hpp"
#include "moerate/linear_expert.hpp"

namespace moerate {

json FfnExpert::family_json() const {
  return json{{"family", "ffn"}, {"activation", activation_name(act_)}};
}

arma::rowvec FfnExpert::mean(const arma::mat& X, const arma::vec& eta) const {
  arma::rowvec z = eta.head(d_).t() * X;
  z += eta[d_];
  return eta[d_ + 1] * activate(act_, z);
}

arma::mat FfnExpert::jacobian(const arma::mat& X, const arma::vec& eta) const {
  arma::rowvec z = eta.head(d_).t() * X;
  z += eta[d_];
  const double c = eta[d_ + 1];
  const arma::rowvec p1 = activate_d1(act_, z);
  arma::mat J(d_ + 2, X.n_cols);
  J.rows(0, d_ - 1) = X.each_row() % (c * p1);
  J.row(d_) = c * p1;
  J.row(d_ + 1) = activate(act_, z);
  return J;
}

arma::mat FfnExpert::hessian(const arma::mat& X, const arma::vec& eta) const {
  const std::size_t q = d_ + 2, n = X.n_cols;
  arma::rowvec z = eta.head(d_).t() * X;
  z += eta[d_];
  const double c = eta[d_ + 1];
  const arma::rowvec p1 = activate_d1(act_, z), p2 = activate_d2(act_, z);
  // Extended covariate v = (x, 1): d2h/dv_u dv_v = c phi'' v_u v_v; d2h/dv_u dc = phi' v_u.
  arma::mat V(d_ + 1, n);
  V.rows(0, d_ - 1) = X;
  V.row(d_).ones();
  arma::mat H(q * q, n, arma::fill::zeros);
  for (std::size_t u = 0; u <= d_; ++u) {
    for (std::size_t v = 0; v <= d_; ++v) H.row(u * q + v) = c * p2 % V.row(u) % V.row(v);
    H.row(u * q + d_ + 1) = p1 % V.row(u);
    H.row((d_ + 1) * q + u) = p1 % V.row(u);
  }
  return H;
}

json FfnExpert::to_json(const arma::vec& eta) const {
  return json{{"a", arma::conv_to<std::vector<double>>::from(eta.head(d_))},
              {"b", eta[d_]},
              {"c", eta[d_ + 1]}};
}

arma::vec FfnExpert::from_json(const json& j, const std::string& where) const {
  arma::vec eta(d_ + 2);
  eta.head(d_) = json_vector(j, "a", d_, where);
  eta[d_] = json_number(j, "b", where);
  eta[d_ + 1] = json_number(j, "c", where);
  return eta;
}

arma::vec FfnExpert::canonical(const arma::vec& eta) const {
  if (act_ == Activation::tanh && eta[d_ + 1] < 0) return -eta;
  return eta;
}

std::vector<arma::vec> FfnExpert::equivalents(const arma::vec& eta) const {
  if (act_ == Activation::tanh) return {eta, arma::vec(-eta)};
  return {eta};
}

arma::vec FfnExpert::initial(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                             Rng& rng) const {
  // Candidates: the local linearisation of a weighted linear fit (the unit
  // works in its near-linear range), plus random starts; each refined by LM,
  // the lowest weighted squared error kept.
  ExpertMStepOptions opt;
  opt.lm_steps = 50;
  auto sse = [&](const arma::vec& e) {
    const arma::rowvec r = y - mean(X, e);
    return arma::accu(w % r % r);
  };
  std::vector<arma::vec> cands;
  const arma::vec lin = weighted_least_squares(X, y, w);
  if (lin.n_elem == d_ + 1 && lin.is_finite()) {
    const arma::rowvec fit = lin.head(d_).t() * X + lin[d_];
    const double range = std::max(arma::abs(fit).max(), 1e-3);
    arma::vec e(d_ + 2);
    switch (act_) {
      case Activation::tanh: {
        const double c = 2 * range;  // z stays in [-0.5, 0.5]
        e.head(d_ + 1) = lin / c;
        e[d_ + 1] = c;
        break;
      }
      case Activation::sigmoid: {
        // c sigmoid(z) ~ c/2 + c z / 4 near 0: match slope and level roughly.
        const double c = 2 * range;
        e.head(d_) = 4 * lin.head(d_) / c;
        e[d_] = 4 * (lin[d_] - c / 2) / c;
        e[d_ + 1] = c;
        break;
      }
      default: {  // gelu, relu: positive part ~ z for z > 0
        const double shift = 2 * range;
        e.head(d_) = lin.head(d_);
        e[d_] = lin[d_] + shift;
        e[d_ + 1] = 1.0;
        break;
      }
    }
    cands.push_back(e);
  }
  for (int t = 0; t < 4; ++t) {
    arma::vec e(d_ + 2);
    for (auto& v : e) v = rng.normal(0, 1);
    e[d_ + 1] = rng.normal(0, 1) * std::sqrt(arma::accu(w % y % y) / std::max(arma::accu(w), 1e-300));
    cands.push_back(e);
  }
  arma::vec best;
  double best_s = kInf;
  for (auto& e : cands) {
    m_step(X, y, w, e, opt);
    const double s = sse(e);
    if (std::isfinite(s) && s < best_s) {
      best_s = s;
      best = e;
    }
  }
  if (best.is_empty()) best = arma::vec(d_ + 2, arma::fill::ones);
  return best;
}

MOERATE_REGISTER_EXPERT(
    "ffn", "one-hidden-unit experts c * phi(a^T x + b); option activation=sigmoid|tanh|gelu|relu",
    [](const json& spec, std::size_t d) -> std::shared_ptr<ExpertFamily> {
      std::string act = "tanh";
      if (spec.contains("activation")) act = spec["activation"].get<std::string>();
      else if (spec.contains("_")) act = spec["_"].get<std::string>();
      return std::make_shared<FfnExpert>(d, parse_activation(act));
    });

}  // namespace moerate
