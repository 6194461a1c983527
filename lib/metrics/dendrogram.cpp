// The dendrogram of mixing measures (see the header).
#include "moerate/metrics/dendrogram.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "moerate/core/error.hpp"
#include "moerate/core/numerics.hpp"

namespace moerate {

void DendrogramOptions::validate() const {
  if (!(power > 0) || !std::isfinite(power)) fail("DendrogramOptions", "power", "must be finite and > 0", power);
  if (!(omega >= 0) || !std::isfinite(omega)) fail("DendrogramOptions", "omega", "must be finite and >= 0", omega);
  if (weights != "mass" && weights != "beta0")
    throw InvalidArgument("DendrogramOptions: weights must be 'mass' or 'beta0'; got '" + weights + "'");
}

double merge_dissimilarity(double p_i, const arma::vec& theta_i, double p_j, const arma::vec& theta_j, double power) {
  if (!(p_i >= 0) || !(p_j >= 0) || !std::isfinite(p_i) || !std::isfinite(p_j))
    fail("merge_dissimilarity", "weights", "must be finite and >= 0", std::min(p_i, p_j));
  const double lp_i = p_i > 0 ? std::log(p_i) : -arma::datum::inf, lp_j = p_j > 0 ? std::log(p_j) : -arma::datum::inf;
  return log_merge_dissimilarity_weights(lp_i, theta_i, lp_j, theta_j, power);
}

double log_merge_dissimilarity_weights(double log_p_i, const arma::vec& theta_i, double log_p_j,
                                       const arma::vec& theta_j, double power) {
  if (theta_i.n_elem != theta_j.n_elem)
    throw InvalidArgument("merge_dissimilarity: the atoms have different numbers of parameters");
  // p_i p_j / (p_i + p_j) in log space: weights of 1e-300 (saturated softmax gates) stay exact.
  if (log_p_i == -arma::datum::inf || log_p_j == -arma::datum::inf) return 0.0;
  const double log_w = log_p_i + log_p_j - log_sum_exp(log_p_i, log_p_j);
  const double dist = arma::norm(theta_i - theta_j, 2);
  return std::exp(log_w) * std::pow(dist, power);
}

namespace {

void require_softmax(const GaussianMoE& m, const std::string& fn) {
  if (m.gating().family() != "softmax")
    throw InvalidArgument(fn + ": the dendrogram merges softmax gates only; the model's gating is '" +
                          m.gating().family() + "'");
  if (m.kind() != ModelKind::gaussian)
    throw InvalidArgument(fn + ": the dendrogram needs a Gaussian MoE (the regression model has no likelihood)");
}

}  // namespace

arma::vec atom_log_weights(const GaussianMoE& m) {
  arma::vec lw(m.n_experts());
  for (std::size_t i = 0; i < lw.n_elem; ++i) lw[i] = m.gating().atom_log_weight(i);
  return lw - log_sum_exp(lw);
}

arma::vec atom_weights(const GaussianMoE& m) { return arma::exp(atom_log_weights(m)); }

arma::vec atom_log_masses(const GaussianMoE& m, const arma::mat& X) {
  const arma::mat L = m.log_weights(X);  // k x n
  arma::vec lm(L.n_rows);
  for (std::size_t j = 0; j < L.n_rows; ++j) lm[j] = log_sum_exp(arma::vec(L.row(j).t())) - std::log(double(L.n_cols));
  return lm;
}

arma::mat atom_parameters(const GaussianMoE& m, bool with_location) {
  const std::size_t k = m.n_experts(), d = with_location ? m.gate_dim() : 0, q = m.eta().n_rows;
  arma::mat T(d + q + 1, k);
  for (std::size_t i = 0; i < k; ++i) {
    if (d > 0) T.col(i).head(d) = m.gating().atom_location(i);
    T.col(i).subvec(d, d + q - 1) = m.eta().col(i);
    T(d + q, i) = m.nu()[i];
  }
  return T;
}

namespace {

/// Merge experts i < j of m with averaging weights (wi, wj), wi + wj = 1. The
/// merged gate: beta0 = log(e^beta0_i + e^beta0_j) and averaged locations, or,
/// when P (k - 1 x n target gate probabilities on X) is given, the gating
/// family's fit to P from zero (its KL projection on the data).
GaussianMoE merge_with(const GaussianMoE& m, std::size_t lo, std::size_t hi, double wi, double wj, const arma::mat* X,
                       const arma::mat* P) {
  const std::size_t k = m.n_experts();
  const double b0i = m.gating().atom_log_weight(lo), b0j = m.gating().atom_log_weight(hi);
  const double b0 = log_sum_exp(b0i, b0j);
  auto gating = make_gating(m.gating().family_json(), k - 1, m.gate_dim());
  arma::mat eta(m.eta().n_rows, k - 1);
  arma::vec nu(k - 1);
  std::size_t c = 0;
  for (std::size_t l = 0; l < k; ++l) {
    if (l == hi) continue;
    if (l == lo) {
      const arma::vec loc = wi * m.gating().atom_location(lo) + wj * m.gating().atom_location(hi);
      gating->set_gate_json(c, json{{"beta0", b0}, {"beta1", arma::conv_to<std::vector<double>>::from(loc)}},
                            "merged gate");
      eta.col(c) = wi * m.eta().col(lo) + wj * m.eta().col(hi);
      nu[c] = wi * m.nu()[lo] + wj * m.nu()[hi];
    } else {
      gating->set_gate_json(c, m.gating().gate_json(l), "gate");
      eta.col(c) = m.eta().col(l);
      nu[c] = m.nu()[l];
    }
    ++c;
  }
  gating->normalise();
  if (X && P) {
    const Covariates::Rows xg = m.gate_x(*X);  // the gate's own covariates
    gating->init_from_responsibilities(xg.mat(), *P);
  }
  return GaussianMoE(std::move(gating), m.expert_family_ptr(), eta, nu, m.kind(), m.covariates());
}

/// Row c: log of the summed gate probabilities of the fitted atoms in members[c].
arma::mat cluster_log_gates(const arma::mat& L0, const std::vector<std::vector<std::size_t>>& members) {
  arma::mat G(members.size(), L0.n_cols);
  for (std::size_t c = 0; c < members.size(); ++c) {
    arma::uvec rows(members[c].size());
    for (std::size_t u = 0; u < rows.n_elem; ++u) rows[u] = members[c][u];
    G.row(c) = log_sum_exp_cols(L0.rows(rows));
  }
  return G;
}

}  // namespace

GaussianMoE merge_experts(const GaussianMoE& m, std::size_t i, std::size_t j, const arma::mat* X) {
  require_softmax(m, "merge_experts");
  const std::size_t k = m.n_experts();
  if (i >= k || j >= k || i == j)
    throw InvalidArgument("merge_experts: experts " + std::to_string(i) + " and " + std::to_string(j) +
                          " are not two distinct experts of " + std::to_string(k));
  const std::size_t lo = std::min(i, j), hi = std::max(i, j);
  const double b0i = m.gating().atom_log_weight(lo), b0j = m.gating().atom_log_weight(hi);
  const double b0 = log_sum_exp(b0i, b0j);
  if (!X) return merge_with(m, lo, hi, std::exp(b0i - b0), std::exp(b0j - b0), nullptr, nullptr);
  const arma::vec lm = atom_log_masses(m, *X);
  const double l = log_sum_exp(lm[lo], lm[hi]);
  const arma::mat L0 = m.log_weights(*X);
  std::vector<std::vector<std::size_t>> members;
  for (std::size_t u = 0; u < k; ++u)
    if (u != hi) members.push_back(u == lo ? std::vector<std::size_t>{lo, hi} : std::vector<std::size_t>{u});
  const arma::mat P = arma::exp(cluster_log_gates(L0, members));
  return merge_with(m, lo, hi, std::exp(lm[lo] - l), std::exp(lm[hi] - l), X, &P);
}

Dendrogram build_dendrogram(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y,
                            const DendrogramOptions& opt) {
  opt.validate();
  require_softmax(m, "build_dendrogram");
  const std::size_t K = m.n_experts(), n = y.n_elem;
  if (n < 2) throw InvalidArgument("build_dendrogram: needs at least 2 observations; got " + std::to_string(n));
  const bool mass = opt.weights == "mass";
  Dendrogram d;
  d.n_obs = n;
  d.power = opt.power;
  d.weights = opt.weights;
  d.omega = opt.omega > 0 ? opt.omega : std::log(double(n));
  const arma::mat L0 = m.log_weights(X);  // the fitted gates (K x n)
  GaussianMoE cur = m;
  std::vector<std::size_t> node(K);            // dendrogram node of each current atom
  std::vector<std::vector<std::size_t>> members(K);
  for (std::size_t i = 0; i < K; ++i) node[i] = i, members[i] = {i};
  for (std::size_t k = K; k >= 1; --k) {
    DendrogramLevel lev{k, cur, 0, 0, 0, 0, 0, members};
    // mass: the merged mixing measure's gates are the sums of its members' fitted gates (exact);
    // beta0: the merged model itself.
    const arma::mat G = mass ? cluster_log_gates(L0, members) : cur.log_weights(X);
    {
      arma::mat J = G;
      const arma::mat H = cur.expert_means(X);
      for (std::size_t c = 0; c < k; ++c) J.row(c) += log_normal_pdf(y, H.row(c), cur.nu()[c]);
      lev.log_likelihood = arma::accu(log_sum_exp_cols(J));
    }
    lev.model_log_likelihood = mass ? cur.log_likelihood(X, y) : lev.log_likelihood;
    lev.mean_log_likelihood = lev.log_likelihood / double(n);
    if (k >= 2) {
      arma::vec lp(k);
      if (mass)
        for (std::size_t c = 0; c < k; ++c) lp[c] = log_sum_exp(arma::vec(G.row(c).t())) - std::log(double(n));
      else
        lp = atom_log_weights(cur);
      const arma::mat T = atom_parameters(cur, !mass);
      if (k == K) d.leaf_weights = arma::conv_to<std::vector<double>>::from(arma::exp(lp));
      double best = std::numeric_limits<double>::infinity();
      std::size_t bi = 0, bj = 1;
      for (std::size_t i = 0; i < k; ++i)
        for (std::size_t j = i + 1; j < k; ++j) {
          const double h = log_merge_dissimilarity_weights(lp[i], T.col(i), lp[j], T.col(j), opt.power);
          if (h < best) best = h, bi = i, bj = j;  // ties: the first pair in (i, j) order
        }
      lev.height = best;
      DendrogramMerge mg;
      mg.a = node[bi];
      mg.b = node[bj];
      mg.node = K + d.merges.size();
      mg.from_k = k;
      mg.height = best;
      mg.leaves = members[bi];
      mg.leaves.insert(mg.leaves.end(), members[bj].begin(), members[bj].end());
      std::sort(mg.leaves.begin(), mg.leaves.end());
      d.merges.push_back(mg);
      // The merged atom takes position bi (< bj); bj is removed.
      node[bi] = mg.node;
      members[bi] = mg.leaves;
      node.erase(node.begin() + bj);
      members.erase(members.begin() + bj);
      if (mass) {
        const double l = log_sum_exp(lp[bi], lp[bj]);
        const arma::mat P = arma::exp(cluster_log_gates(L0, members));
        cur = merge_with(cur, bi, bj, std::exp(lp[bi] - l), std::exp(lp[bj] - l), &X, &P);
      } else {
        cur = merge_experts(cur, bi, bj);
      }
    }
    lev.dsc = lev.height + d.omega * lev.mean_log_likelihood;
    d.levels.push_back(std::move(lev));
    if (k == 1) break;
  }
  double best = -std::numeric_limits<double>::infinity();
  for (const auto& lev : d.levels)
    if (lev.dsc > best) best = lev.dsc, d.chosen_k = lev.k;  // ties: the larger k (visited first)
  return d;
}

json Dendrogram::to_json() const {
  json j;
  j["n_obs"] = n_obs;
  j["omega"] = omega;
  j["power"] = power;
  j["weights"] = weights;
  j["dissimilarity"] = weights == "mass"
                           ? "p_i p_j / (p_i + p_j) * |theta_i - theta_j|^r, p = gate mass on the data, theta = (eta, nu)"
                           : "p_i p_j / (p_i + p_j) * |theta_i - theta_j|^r, p = exp(beta0) normalised, theta = (beta1, eta, nu)";
  j["criterion"] = "argmax_k h(k) + omega * mean log-likelihood(k)";
  j["chosen_k"] = chosen_k;
  j["leaf_weights"] = leaf_weights;
  j["merges"] = json::array();
  for (const auto& mg : merges)
    j["merges"].push_back(
        {{"a", mg.a}, {"b", mg.b}, {"node", mg.node}, {"from_k", mg.from_k}, {"height", mg.height}, {"leaves", mg.leaves}});
  j["levels"] = json::array();
  for (const auto& lev : levels)
    j["levels"].push_back({{"k", lev.k},
                           {"log_likelihood", lev.log_likelihood},
                           {"model_log_likelihood", lev.model_log_likelihood},
                           {"mean_log_likelihood", lev.mean_log_likelihood},
                           {"height", lev.height},
                           {"dsc", lev.dsc},
                           {"members", lev.members},
                           {"model", lev.model.to_json()}});
  return j;
}

}  // namespace moerate
