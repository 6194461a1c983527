#include "moerate/model/expert_family.hpp"

#include <algorithm>

#include "moerate/core/error.hpp"
#include "moerate/core/numerics.hpp"

namespace moerate {

void ExpertMStepOptions::validate() const {
  if (lm_steps < 1) fail("ExpertMStepOptions", "lm_steps", "must be >= 1", lm_steps);
  if (!(lm_lambda0 > 0)) fail("ExpertMStepOptions", "lm_lambda0", "must be > 0", lm_lambda0);
  if (lm_max_tries < 1) fail("ExpertMStepOptions", "lm_max_tries", "must be >= 1", lm_max_tries);
}

std::vector<std::string> ExpertFamily::param_names() const {
  std::vector<std::string> names;
  for (const auto& b : blocks()) {
    if (b.size == 1) {
      names.push_back(b.name);
    } else {
      for (std::size_t u = 0; u < b.size; ++u) names.push_back(b.name + "_" + std::to_string(u + 1));
    }
  }
  return names;
}

arma::mat ExpertFamily::hessian(const arma::mat& X, const arma::vec& eta) const {
  const std::size_t q = n_params(), n = X.n_cols;
  arma::mat H(q * q, n);
  for (std::size_t v = 0; v < q; ++v) {
    const double h = 1e-5 * std::max(1.0, std::abs(eta[v]));
    arma::vec ep = eta, em = eta;
    ep[v] += h;
    em[v] -= h;
    const arma::mat d = (jacobian(X, ep) - jacobian(X, em)) / (2 * h);  // q x n: d/deta_v of dh/deta_u
    for (std::size_t u = 0; u < q; ++u) H.row(u * q + v) = d.row(u);
  }
  return H;
}

static double residual_sse(const arma::rowvec& y, const arma::rowvec& h, const arma::rowvec& w) {
  const arma::rowvec r = y - h;
  return arma::accu(w % r % r);
}

ExpertMStepResult ExpertFamily::m_step(const arma::mat& X, const arma::rowvec& y,
                                       const arma::rowvec& w, arma::vec& eta,
                                       const ExpertMStepOptions& opt) const {
  // Levenberg-Marquardt with Marquardt scaling; a step is accepted only if it
  // lowers the weighted sum of squares (generalised EM).
  // A candidate is judged by its mean alone; the Jacobian is computed at an
  // accepted point when another step follows.
  ExpertMStepResult res;
  arma::rowvec h, hc;
  arma::mat J;
  mean_and_jacobian(X, eta, h, J);
  double sse = residual_sse(y, h, w);
  res.sse_before = res.sse_after = sse;
  double lambda = opt.lm_lambda0;
  for (int step = 0; step < opt.lm_steps; ++step) {
    const arma::rowvec r = y - h;
    const arma::mat JW = J.each_row() % w;
    const arma::mat A = JW * J.t();
    const arma::vec g = JW * r.t();
    if (!A.is_finite() || !g.is_finite()) break;
    arma::vec dA = A.diag();
    const double dmean = std::max(arma::mean(dA), 1e-300);
    for (auto& v : dA) v = std::max(v, 1e-12 * dmean);
    bool accepted = false, done = false;
    for (int t = 0; t < opt.lm_max_tries; ++t) {
      arma::mat M = A;
      M.diag() += lambda * dA;
      arma::mat L;
      if (arma::chol(L, M, "lower")) {
        const arma::vec z = arma::solve(arma::trimatl(L), g);
        const arma::vec delta = arma::solve(arma::trimatu(L.t()), z);
        const arma::vec cand = eta + delta;
        if (cand.is_finite()) {
          hc = mean(X, cand);
          const double s = residual_sse(y, hc, w);
          if (std::isfinite(s) && s < sse) {
            eta = cand;
            std::swap(h, hc);
            const double rel = (sse - s) / std::max(sse, 1e-300);
            sse = s;
            lambda = std::max(lambda / 10, 1e-12);
            accepted = true;
            res.accepted_steps++;
            done = rel < 1e-12;
            break;
          }
        }
      }
      lambda *= 10;
    }
    if (!accepted || done || step + 1 == opt.lm_steps) break;
    mean_and_jacobian(X, eta, h, J);
  }
  res.sse_after = sse;
  return res;
}

void ExpertFamily::validate(const arma::vec& eta, const std::string& where) const {
  if (eta.n_elem != n_params())
    fail(where, "expert parameter vector length", "must be " + std::to_string(n_params()), eta.n_elem);
  if (!eta.is_finite()) throw InvalidArgument(where + ": expert parameters must be finite");
}

arma::vec ExpertFamily::initial(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                                Rng& rng) const {
  arma::vec best;
  double best_sse = kInf;
  ExpertMStepOptions opt;
  opt.lm_steps = 30;
  for (int attempt = 0; attempt < 5; ++attempt) {
    arma::vec eta(n_params());
    for (auto& v : eta) v = rng.normal(0, 0.5);
    m_step(X, y, w, eta, opt);
    const double s = residual_sse(y, mean(X, eta), w);
    if (s < best_sse) {
      best_sse = s;
      best = eta;
    }
  }
  return best;
}

double ExpertFamily::weighted_sse(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                                  const arma::vec& eta) const {
  return residual_sse(y, mean(X, eta), w);
}

arma::vec ExpertFamily::best_refined(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                                     std::vector<arma::vec> candidates, const ExpertMStepOptions& opt,
                                     arma::vec fallback) const {
  arma::vec best;
  double best_s = std::numeric_limits<double>::infinity();
  for (auto& e : candidates) {
    m_step(X, y, w, e, opt);
    const double s = weighted_sse(X, y, w, e);
    if (std::isfinite(s) && s < best_s) {
      best_s = s;
      best = e;
    }
  }
  return best.is_empty() ? fallback : best;
}

std::map<std::string, ExpertInfo>& expert_registry() {
  static std::map<std::string, ExpertInfo> r;
  return r;
}

bool register_expert(const std::string& name, const std::string& description, ExpertFactory f) {
  expert_registry()[name] = ExpertInfo{name, description, std::move(f)};
  return true;
}

std::shared_ptr<ExpertFamily> make_expert_family(const json& spec, std::size_t d) {
  if (!spec.is_object() || !spec.contains("family") || !spec["family"].is_string())
    throw InvalidArgument("expert_family: expected an object with a string \"family\"; got " +
                          spec.dump());
  const std::string name = spec["family"];
  auto& reg = expert_registry();
  auto it = reg.find(name);
  if (it == reg.end()) {
    std::string known;
    for (const auto& [k, v] : reg) known += (known.empty() ? "" : ", ") + k;
    throw InvalidArgument("expert_family: unknown family '" + name + "'; known: " + known);
  }
  if (d < 1) fail("expert_family", "dimension", "must be >= 1", d);
  return it->second.make(spec, d);
}

std::size_t spec_integer(const json& spec, const std::string& key, std::size_t fallback,
                         std::size_t min_value, const std::string& family) {
  if (!spec.is_object() || !spec.contains(key)) return fallback;
  const json& v = spec[key];
  const std::string msg = family + ": option " + key + " must be an integer >= " + std::to_string(min_value) + "; got ";
  if (!v.is_number()) throw InvalidArgument(msg + v.dump());
  const double x = v.get<double>();
  if (!std::isfinite(x) || x != std::floor(x) || x < static_cast<double>(min_value) || x > 1e6)
    throw InvalidArgument(msg + v.dump());
  return static_cast<std::size_t>(x);
}

void check_spec_keys(const json& spec, const std::vector<std::string>& allowed, const std::string& family) {
  if (!spec.is_object()) return;
  for (const auto& [key, val] : spec.items()) {
    if (key == "family") continue;
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    std::string known;
    for (const auto& a : allowed)
      if (a != "_") known += (known.empty() ? "" : ", ") + a;
    throw InvalidArgument(family + ": unknown option '" + (key == "_" ? val.dump() : key) + "'; known options: " + known);
  }
}

}  // namespace moerate
