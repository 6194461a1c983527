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
}

double merge_dissimilarity(double p_i, const arma::vec& theta_i, double p_j, const arma::vec& theta_j, double power) {
  if (!(p_i > 0) || !(p_j > 0)) fail("merge_dissimilarity", "weights", "must be > 0", std::min(p_i, p_j));
  if (theta_i.n_elem != theta_j.n_elem)
    throw InvalidArgument("merge_dissimilarity: the atoms have different numbers of parameters");
  const double dist = arma::norm(theta_i - theta_j, 2);
  return p_i * p_j / (p_i + p_j) * std::pow(dist, power);
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

arma::vec atom_weights(const GaussianMoE& m) {
  arma::vec lw(m.n_experts());
  for (std::size_t i = 0; i < lw.n_elem; ++i) lw[i] = m.gating().atom_log_weight(i);
  return arma::exp(lw - log_sum_exp(lw));
}

arma::mat atom_parameters(const GaussianMoE& m) {
  const std::size_t k = m.n_experts(), d = m.dim(), q = m.eta().n_rows;
  arma::mat T(d + q + 1, k);
  for (std::size_t i = 0; i < k; ++i) {
    T.col(i).head(d) = m.gating().atom_location(i);
    T.col(i).subvec(d, d + q - 1) = m.eta().col(i);
    T(d + q, i) = m.nu()[i];
  }
  return T;
}

GaussianMoE merge_experts(const GaussianMoE& m, std::size_t i, std::size_t j) {
  require_softmax(m, "merge_experts");
  const std::size_t k = m.n_experts();
  if (i >= k || j >= k || i == j)
    throw InvalidArgument("merge_experts: experts " + std::to_string(i) + " and " + std::to_string(j) +
                          " are not two distinct experts of " + std::to_string(k));
  if (k < 2) throw InvalidArgument("merge_experts: a single expert cannot be merged");
  const std::size_t lo = std::min(i, j), hi = std::max(i, j);
  const double b0i = m.gating().atom_log_weight(lo), b0j = m.gating().atom_log_weight(hi);
  const double b0 = std::max(b0i, b0j) + std::log1p(std::exp(-std::abs(b0i - b0j)));
  const double wi = std::exp(b0i - b0), wj = std::exp(b0j - b0);  // wi + wj = 1
  auto gating = make_gating(m.gating().family_json(), k - 1, m.dim());
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
  return GaussianMoE(std::move(gating), m.expert_family_ptr(), eta, nu, m.kind());
}

Dendrogram build_dendrogram(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y,
                            const DendrogramOptions& opt) {
  opt.validate();
  require_softmax(m, "build_dendrogram");
  const std::size_t K = m.n_experts(), n = y.n_elem;
  if (n < 2) throw InvalidArgument("build_dendrogram: needs at least 2 observations; got " + std::to_string(n));
  Dendrogram d;
  d.n_obs = n;
  d.power = opt.power;
  d.omega = opt.omega > 0 ? opt.omega : std::log(double(n));
  GaussianMoE cur = m;
  std::vector<std::size_t> node(K);            // dendrogram node of each current atom
  std::vector<std::vector<std::size_t>> members(K);
  for (std::size_t i = 0; i < K; ++i) node[i] = i, members[i] = {i};
  for (std::size_t k = K; k >= 1; --k) {
    DendrogramLevel lev{k, cur, 0, 0, 0, 0, members};
    lev.log_likelihood = cur.log_likelihood(X, y);
    lev.mean_log_likelihood = lev.log_likelihood / double(n);
    if (k >= 2) {
      const arma::vec p = atom_weights(cur);
      const arma::mat T = atom_parameters(cur);
      double best = std::numeric_limits<double>::infinity();
      std::size_t bi = 0, bj = 1;
      for (std::size_t i = 0; i < k; ++i)
        for (std::size_t j = i + 1; j < k; ++j) {
          const double h = merge_dissimilarity(p[i], T.col(i), p[j], T.col(j), opt.power);
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
      cur = merge_experts(cur, bi, bj);
      // merge_experts keeps order, the merged atom at position bi (< bj), bj removed.
      node[bi] = mg.node;
      members[bi] = mg.leaves;
      node.erase(node.begin() + bj);
      members.erase(members.begin() + bj);
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
  j["dissimilarity"] = "p_i p_j / (p_i + p_j) * |theta_i - theta_j|^r, theta = (beta1, eta, nu)";
  j["criterion"] = "argmax_k h(k) + omega * mean log-likelihood(k)";
  j["chosen_k"] = chosen_k;
  j["merges"] = json::array();
  for (const auto& mg : merges)
    j["merges"].push_back(
        {{"a", mg.a}, {"b", mg.b}, {"node", mg.node}, {"from_k", mg.from_k}, {"height", mg.height}, {"leaves", mg.leaves}});
  j["levels"] = json::array();
  for (const auto& lev : levels)
    j["levels"].push_back({{"k", lev.k},
                           {"log_likelihood", lev.log_likelihood},
                           {"mean_log_likelihood", lev.mean_log_likelihood},
                           {"height", lev.height},
                           {"dsc", lev.dsc},
                           {"members", lev.members},
                           {"model", lev.model.to_json()}});
  return j;
}

}  // namespace moerate
