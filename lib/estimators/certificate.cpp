#include "moerate/estimators/certificate.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "moerate/core/error.hpp"
#include "moerate/core/numerics.hpp"

namespace moerate {

arma::mat observation_scores(const GaussianMoE& model, const arma::mat& X, const arma::rowvec& y,
                             const arma::mat& R) {
  const std::size_t k = model.n_experts(), n = X.n_cols, q = model.experts().n_params();
  const std::size_t pg = model.gating().n_params();
  const bool gaussian = model.kind() == ModelKind::gaussian;
  arma::mat S(pg + q * k + (gaussian ? k : 0), n);
  const Covariates::Rows xg = model.gate_x(X), xe = model.expert_x(X);  // X itself when shared
  if (pg > 0) S.rows(0, pg - 1) = model.gating().log_weights_vjp_obs(xg.mat(), R);
  const arma::mat H = model.expert_means(X);
  for (std::size_t j = 0; j < k; ++j) {
    const double nu = model.nu()[j];
    const arma::rowvec r = y - H.row(j);
    const arma::rowvec wr = R.row(j) % r / nu;
    arma::mat J = model.experts().jacobian(xe.mat(), model.eta().col(j));  // q x n
    J.each_row() %= wr;
    S.rows(pg + j * q, pg + j * q + q - 1) = J;
    if (gaussian) S.row(pg + q * k + j) = 0.5 * R.row(j) % (r % r / nu - 1.0);
  }
  return S;
}

arma::vec observation_score_sum(const GaussianMoE& model, const arma::mat& X, const arma::rowvec& y,
                                const arma::mat& R) {
  const std::size_t k = model.n_experts(), q = model.experts().n_params();
  const std::size_t pg = model.gating().n_params();
  const bool gaussian = model.kind() == ModelKind::gaussian;
  arma::vec g(pg + q * k + (gaussian ? k : 0));
  const Covariates::Rows xg = model.gate_x(X), xe = model.expert_x(X);  // X itself when shared
  if (pg > 0) g.subvec(0, pg - 1) = model.gating().log_weights_vjp(xg.mat(), R);
  const arma::mat H = model.expert_means(X);
  for (std::size_t j = 0; j < k; ++j) {
    const double nu = model.nu()[j];
    const arma::rowvec r = y - H.row(j);
    const arma::rowvec wr = R.row(j) % r / nu;
    g.subvec(pg + j * q, pg + j * q + q - 1) = model.experts().jacobian(xe.mat(), model.eta().col(j)) * wr.t();
    if (gaussian) g[pg + q * k + j] = 0.5 * arma::accu(R.row(j) % (r % r / nu - 1.0));
  }
  return g;
}

namespace {

/// The score and its outer-product information, summed over observations.
struct ScoreMoments {
  arma::vec g;
  arma::mat J;
  void add(const arma::mat& S) {  // S: p x B per-observation scores
    if (g.is_empty()) {
      g.zeros(S.n_rows);
      J.zeros(S.n_rows, S.n_rows);
    }
    g += arma::sum(S, 1);
    J += S * S.t();
  }
};

constexpr std::size_t kScoreBlock = 4096;

/// The score moments, block by block (memory: no k x n matrix); block_resp(Xb, yb)
/// gives the responsibilities of the block's observations, whose first index is a.
template <class BlockResp>
ScoreMoments score_moments(const GaussianMoE& model, const arma::mat& X, const arma::rowvec& y,
                           BlockResp&& block_resp) {
  ScoreMoments sm;
  for (std::size_t a = 0; a < X.n_cols; a += kScoreBlock) {
    const std::size_t b = std::min<std::size_t>(X.n_cols, a + kScoreBlock) - 1;
    const arma::mat Xb = X.cols(a, b);
    const arma::rowvec yb = y.cols(a, b);
    sm.add(observation_scores(model, Xb, yb, block_resp(a, Xb, yb)));
  }
  return sm;
}

/// sqrt(g_F^T J_FF^-1 g_F) over the free coordinates F (see the header).
double score_norm(const ScoreMoments& sm, const GaussianMoE& model, const Box& box) {
  const arma::vec& g = sm.g;
  const arma::mat& J = sm.J;
  if (g.is_empty() || !g.is_finite() || !J.is_finite()) return arma::datum::nan;
  // Free coordinates: not on a bound with the score pointing out of the box,
  // and not identically without information (an empty component).
  const arma::vec theta = model.flat_params();
  std::vector<arma::uword> free;
  for (std::size_t i = 0; i < g.n_elem; ++i) {
    if (!(J(i, i) > 0)) continue;
    if (!box.empty()) {
      const double tl = 1e-8 * std::max(1.0, std::abs(box.lower[i]));
      const double tu = 1e-8 * std::max(1.0, std::abs(box.upper[i]));
      if (std::isfinite(box.upper[i]) && theta[i] >= box.upper[i] - tu && g[i] > 0) continue;
      if (std::isfinite(box.lower[i]) && theta[i] <= box.lower[i] + tl && g[i] < 0) continue;
    }
    free.push_back(i);
  }
  if (free.empty()) return 0.0;
  const arma::uvec F(free);
  arma::mat JF = J.submat(F, F);
  const arma::vec gF = g.elem(F);
  const double ridge = 1e-12 * arma::trace(JF) / double(F.n_elem) + 1e-300;
  JF.diag() += ridge;
  arma::mat C;
  if (!arma::chol(C, JF, "lower")) return arma::datum::inf;
  const arma::vec z = arma::solve(arma::trimatl(C), gF);
  return std::sqrt(arma::dot(z, z));
}

}  // namespace

double score_statistic(const GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, const arma::mat& R,
                       const Box& box) {
  if (model.kind() != ModelKind::gaussian) return arma::datum::nan;
  const ScoreMoments sm = score_moments(model, X, y, [&](std::size_t a, const arma::mat& Xb, const arma::rowvec&) {
    return arma::mat(R.cols(a, a + Xb.n_cols - 1));
  });
  return score_norm(sm, model, box);
}

double score_statistic(const GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, const Box& box) {
  if (model.kind() != ModelKind::gaussian) return arma::datum::nan;
  const ScoreMoments sm = score_moments(model, X, y, [&](std::size_t, const arma::mat& Xb, const arma::rowvec& yb) {
    return model.responsibilities(Xb, yb);
  });
  return score_norm(sm, model, box);
}

namespace {

std::string join_indices(const std::vector<std::size_t>& v) {
  std::ostringstream s;
  for (std::size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i] + 1;
  return s.str();
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

FitCertificate certify(const GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, StopReason stop_reason,
                       int iterations, double ll_change, double max_decrease, std::size_t n_params,
                       const CertifyOptions& opt) {
  FitCertificate c;
  c.stop_reason = stop_reason;
  c.iterations = iterations;
  c.ll_change = ll_change;
  c.max_decrease = max_decrease;
  c.score_tol = opt.score_tol;
  const std::size_t n = X.n_cols, k = model.n_experts();
  const bool gaussian = model.kind() == ModelKind::gaussian;
  const arma::vec theta = model.flat_params();
  const auto names = model.flat_names();
  double ll = 0;
  if (gaussian) {
    // Block by block (memory: no k x n matrix): the score moments, the
    // log-likelihood and the responsibility mass of each atom.
    c.atom_mass.zeros(k);
    const ScoreMoments sm = score_moments(model, X, y, [&](std::size_t, const arma::mat& Xb, const arma::rowvec& yb) {
      arma::mat R = model.log_joint(Xb, yb);
      const arma::rowvec ll_obs = log_sum_exp_cols(R);
      ll += arma::accu(ll_obs);
      R.each_row() -= ll_obs;
      exp_inplace(R.memptr(), R.n_elem);
      c.atom_mass += arma::sum(R, 1);
      return R;
    });
    c.score_norm = score_norm(sm, model, opt.box);
    c.atom_mass /= double(std::max<std::size_t>(n, 1));
  } else {
    c.atom_mass = arma::mean(exp_entries(model.log_weights(X)), 1);
  }
  for (std::size_t j = 0; j < k; ++j)
    if (c.atom_mass[j] < opt.near_empty_mass) c.near_empty.push_back(j);
  if (gaussian && opt.variance_floor_abs > 0)
    for (std::size_t j = 0; j < k; ++j)
      if (model.nu()[j] <= opt.variance_floor_abs * (1 + 1e-9)) c.floored.push_back(j);
  for (std::size_t i : opt.box.active(theta)) c.at_bound.push_back(names[i]);
  const Covariates::Rows xg = model.gate_x(X);  // the covariates the gate multiplies
  const double xmax = xg.mat().is_empty() ? 0.0 : arma::abs(xg.mat()).max();
  const arma::vec gp = model.gating().params();
  const auto gnames = model.gating().param_names();
  for (std::size_t i = 0; i < gp.n_elem; ++i)
    if (std::abs(gp[i]) * (1 + xmax) > opt.saturation) c.saturated.push_back(gnames[i]);
  c.underdetermined = n < n_params;

  const bool stopped_ok = stop_reason == StopReason::converged || stop_reason == StopReason::converged_relative;
  const bool decreased = max_decrease > opt.decrease_tol * std::max(1.0, std::abs(ll));
  const bool score_ok = !gaussian || (std::isfinite(c.score_norm) && c.score_norm <= opt.score_tol);
  c.certified = stopped_ok && score_ok && !decreased;

  std::ostringstream w;
  if (!stopped_ok) c.warnings.push_back("stopped: " + stop_reason_name(stop_reason) + " (not converged)");
  if (gaussian && !score_ok) {
    w.str("");
    w << "score statistic " << c.score_norm << " above " << opt.score_tol
      << " (the optimum is not reached to within that many standard errors)";
    c.warnings.push_back(w.str());
  }
  if (decreased) {
    w.str("");
    w << "the log-likelihood decreased by " << max_decrease << " during the fit (must not happen)";
    c.warnings.push_back(w.str());
  }
  if (!c.near_empty.empty()) {
    w.str("");
    w << "near-empty atoms " << join_indices(c.near_empty) << " (responsibility mass / n below " << opt.near_empty_mass
      << ")";
    c.warnings.push_back(w.str());
  }
  if (!c.floored.empty()) c.warnings.push_back("variances on the floor: experts " + join_indices(c.floored));
  if (!c.at_bound.empty()) c.warnings.push_back("on a bound of the parameter space: " + join(c.at_bound));
  if (!c.saturated.empty()) {
    w.str("");
    w << "gate saturating (|parameter| x (1 + max|x|) > " << opt.saturation << "): " << join(c.saturated)
      << "; set bounds for a compact parameter space";
    c.warnings.push_back(w.str());
  }
  if (c.underdetermined) {
    w.str("");
    w << "fewer observations (" << n << ") than parameters (" << n_params << ")";
    c.warnings.push_back(w.str());
  }
  return c;
}

json FitCertificate::to_json() const {
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  json j;
  j["certified"] = certified;
  j["stop_reason"] = stop_reason_name(stop_reason);
  j["iterations"] = iterations;
  j["ll_change"] = num(ll_change);
  j["score_norm"] = num(score_norm);
  j["score_tol"] = score_tol;
  j["max_decrease"] = max_decrease;
  j["atom_mass"] = arma::conv_to<std::vector<double>>::from(atom_mass);
  auto one_based = [](const std::vector<std::size_t>& v) {
    std::vector<std::size_t> o;
    for (auto i : v) o.push_back(i + 1);
    return o;
  };
  j["near_empty_atoms"] = one_based(near_empty);
  j["floored_variances"] = one_based(floored);
  j["at_bound"] = at_bound;
  j["saturated_gates"] = saturated;
  j["underdetermined"] = underdetermined;
  j["warnings"] = warnings;
  return j;
}

std::string FitCertificate::flags() const {
  std::vector<std::string> f;
  if (!near_empty.empty()) f.push_back("near_empty");
  if (!floored.empty()) f.push_back("floored");
  if (!at_bound.empty()) f.push_back("at_bound");
  if (!saturated.empty()) f.push_back("saturated");
  if (underdetermined) f.push_back("underdetermined");
  std::string s;
  for (const auto& x : f) s += (s.empty() ? "" : ";") + x;
  return s;
}

}  // namespace moerate
