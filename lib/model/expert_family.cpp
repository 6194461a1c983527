#include "moerate/model/expert_family.hpp"

#include <algorithm>
#include <cstring>

#include "moerate/core/error.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/core/parallel.hpp"

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

namespace {

double block_sse(const double* y, const double* h, const double* w, std::size_t B) {
  double s = 0;
  for (std::size_t i = 0; i < B; ++i) {
    const double r = y[i] - h[i];
    s += w[i] * r * r;
  }
  return s;
}

/// The Gauss-Newton system of the weighted least-squares problem at eta:
/// A = sum_i w_i J_i J_i^T, g = sum_i w_i J_i r_i and the weighted sum of
/// squares, in one pass over blocks of observations (reduce_blocks: the same
/// numbers for every thread count). Only a block's Jacobian exists at a time
/// (p x 2048), not a p x n matrix and its weighted copy.
constexpr std::size_t kLoopMaxP = 16;

struct LmSystem {
  arma::mat A;
  arma::vec g;
  double sse = 0;
  LmSystem& operator+=(const LmSystem& o) {
    A += o.A;
    g += o.g;
    sse += o.sse;
    return *this;
  }
};

/// A += sum_i w_i J_i J_i^T (upper triangle), g += sum_i w_i r_i J_i and
/// sse += sum_i w_i r_i^2 over the B columns of J (p x B), r_i = y_i - h_i, in
/// local arrays (registers for small p; P > 0: p known at compile time, its
/// loops unrolled). Even and odd observations go to separate accumulators,
/// added at the end: each running sum then waits for the previous one every
/// second observation only (the adds' latency, not their count, bounds a
/// one-accumulator loop).
template <std::size_t P>
void add_gauss_newton_p(std::size_t p_run, const double* __restrict J, const double* __restrict w,
                        const double* __restrict y, const double* __restrict h, std::size_t B, arma::mat& A,
                        arma::vec& g, double& sse) {
  const std::size_t p = P > 0 ? P : p_run;
  constexpr std::size_t kTri = kLoopMaxP * (kLoopMaxP + 1) / 2;
  double Al[2][kTri] = {}, gl[2][kLoopMaxP] = {}, sl[2] = {0, 0};
  auto one = [&](std::size_t i, double* __restrict a, double* __restrict gg, double& s) {
    const double* Ji = J + i * p;
    const double r = y[i] - h[i];
    const double wi = w[i], wr = wi * r;
    s += wr * r;
    for (std::size_t v = 0, t = 0; v < p; ++v) {
      const double wj = wi * Ji[v];
      gg[v] += wr * Ji[v];
      for (std::size_t u = 0; u <= v; ++u, ++t) a[t] += wj * Ji[u];
    }
  };
  std::size_t i = 0;
  for (; i + 1 < B; i += 2) {
    one(i, Al[0], gl[0], sl[0]);
    one(i + 1, Al[1], gl[1], sl[1]);
  }
  if (i < B) one(i, Al[0], gl[0], sl[0]);
  for (std::size_t v = 0, t = 0; v < p; ++v) {
    g[v] += gl[0][v] + gl[1][v];
    for (std::size_t u = 0; u <= v; ++u, ++t) A(u, v) += Al[0][t] + Al[1][t];
  }
  sse += sl[0] + sl[1];
}

void add_gauss_newton(std::size_t p, const double* J, const double* w, const double* y, const double* h,
                      std::size_t B, arma::mat& A, arma::vec& g, double& sse) {
  switch (p) {
    case 2: return add_gauss_newton_p<2>(p, J, w, y, h, B, A, g, sse);
    case 3: return add_gauss_newton_p<3>(p, J, w, y, h, B, A, g, sse);
    case 4: return add_gauss_newton_p<4>(p, J, w, y, h, B, A, g, sse);
    default: return add_gauss_newton_p<0>(p, J, w, y, h, B, A, g, sse);
  }
}

LmSystem lm_system(const ExpertFamily& f, const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                   const arma::vec& eta) {
  const std::size_t p = f.n_params();
  const LmSystem zero{arma::mat(p, p, arma::fill::zeros), arma::vec(p, arma::fill::zeros), 0.0};
  LmSystem sys = reduce_blocks<LmSystem>(X.n_cols, zero, [&](LmSystem& acc, std::size_t a, std::size_t b) {
    const std::size_t B = b - a;
    const arma::mat Xb = column_view(X, a, b);
    if (f.gauss_newton_block(Xb, y.colptr(a), w.colptr(a), eta, acc.A, acc.g, acc.sse)) return;
    arma::rowvec h;
    arma::mat J;
    f.mean_and_jacobian(Xb, eta, h, J);
    if (p <= kLoopMaxP) {
      // Plain loops: for a few parameters a BLAS product over a 2048-column
      // block is mostly call overhead (the upper triangle, then mirrored).
      add_gauss_newton(p, J.memptr(), w.colptr(a), y.colptr(a), h.memptr(), B, acc.A, acc.g, acc.sse);
    } else {
      arma::rowvec r(B, arma::fill::none);
      for (std::size_t i = 0; i < B; ++i) r[i] = y[a + i] - h[i];
      arma::mat JW = J;
      for (std::size_t i = 0; i < B; ++i) JW.col(i) *= w[a + i];
      acc.A += JW * J.t();
      acc.g += JW * r.t();
      acc.sse += block_sse(y.colptr(a), h.memptr(), w.colptr(a), B);
    }
  });
  if (p <= kLoopMaxP) sys.A = arma::symmatu(sys.A);
  return sys;
}

/// The weighted sum of squares at eta, by blocks (no n-vector of means).
double blocked_sse(const ExpertFamily& f, const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                   const arma::vec& eta) {
  return reduce_blocks<double>(X.n_cols, 0.0, [&](double& acc, std::size_t a, std::size_t b) {
    const arma::rowvec h = f.mean(column_view(X, a, b), eta);
    acc += block_sse(y.colptr(a), h.memptr(), w.colptr(a), b - a);
  });
}

}  // namespace

ExpertMStepResult ExpertFamily::m_step(const arma::mat& X, const arma::rowvec& y,
                                       const arma::rowvec& w, arma::vec& eta,
                                       const ExpertMStepOptions& opt) const {
  // Levenberg-Marquardt with Marquardt scaling; a step is accepted only if it
  // lowers the weighted sum of squares (generalised EM). One blocked pass
  // builds the Gauss-Newton system at the start (lm_system), then one per
  // candidate builds the candidate's sum of squares and system together.
  ExpertMStepResult res;
  LmSystem sys = lm_system(*this, X, y, w, eta);
  double sse = sys.sse;
  res.sse_before = res.sse_after = sse;
  double lambda = opt.lm_lambda0;
  for (int step = 0; step < opt.lm_steps; ++step) {
    const arma::mat& A = sys.A;
    const arma::vec& g = sys.g;
    if (!A.is_finite() || !g.is_finite()) break;
    arma::vec dA = A.diag();
    const double dmean = std::max(arma::mean(dA), 1e-300);
    for (auto& v : dA) v = std::max(v, 1e-12 * dmean);
    bool accepted = false, done = false;
    LmSystem next;
    for (int t = 0; t < opt.lm_max_tries; ++t) {
      arma::mat M = A;
      M.diag() += lambda * dA;
      arma::mat L;
      if (arma::chol(L, M, "lower")) {
        const arma::vec z = arma::solve(arma::trimatl(L), g);
        const arma::vec delta = arma::solve(arma::trimatu(L.t()), z);
        const arma::vec cand = eta + delta;
        // A candidate equal to eta in every bit has eta's sum of squares, which
        // is not below itself: rejected without a pass over the data (the same
        // outcome). Near an M-step's optimum the damping grows until the tries
        // run out; in a tanh fit at n = 1e5 a third of the rejected candidates
        // (about 250 of 760 passes) were eta itself.
        if (cand.is_finite() && std::memcmp(cand.memptr(), eta.memptr(), eta.n_elem * sizeof(double)) != 0) {
          // The candidate's pass builds its Gauss-Newton system as well: if it
          // is accepted, that is the next step's system (no second pass over
          // the data, no second evaluation of the family's nonlinearity).
          LmSystem trial = lm_system(*this, X, y, w, cand);
          const double s = trial.sse;
          if (std::isfinite(s) && s < sse) {
            eta = cand;
            next = std::move(trial);
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
    sys = std::move(next);
  }
  res.sse_after = sse;
  return res;
}

void ExpertMStepPlan::run_remaining(std::size_t n) {
  if (stage_ == 0) {
    reduce_blocks<int>(n, 0, [&](int&, std::size_t a, std::size_t b) { first_block(a, b); });
    first_done();
  }
  if (stage_ == 1) {
    reduce_blocks<int>(n, 0, [&](int&, std::size_t a, std::size_t b) { trial_block(a, b); });
    trial_done();
  }
}

ExpertMStepAll ExpertFamily::m_step_all(const arma::mat& X, const arma::rowvec& y, const arma::mat& R,
                                        arma::mat& eta, const ExpertMStepOptions& opt) const {
  const std::size_t k = R.n_rows;
  ExpertMStepAll all{std::vector<ExpertMStepResult>(k), arma::vec(k)};
  for (std::size_t j = 0; j < k; ++j) {
    const arma::rowvec w = R.row(j);
    all.weight[j] = arma::accu(w);
    if (!(all.weight[j] > kEmptyExpertWeight)) continue;
    arma::vec e = eta.col(j);
    all.results[j] = m_step(X, y, w, e, opt);
    eta.col(j) = e;
  }
  return all;
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
    const double s = blocked_sse(*this, X, y, w, eta);
    if (s < best_sse) {
      best_sse = s;
      best = eta;
    }
  }
  return best;
}

double ExpertFamily::weighted_sse(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                                  const arma::vec& eta) const {
  return blocked_sse(*this, X, y, w, eta);
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
