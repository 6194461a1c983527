#include "moerate/model/response.hpp"

#include <algorithm>
#include <cmath>

#include "moerate/core/error.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/io/csv.hpp"

namespace moerate {

arma::rowvec log_sigmoid(const arma::rowvec& z) {
  arma::rowvec out(z.n_elem);
  for (std::size_t i = 0; i < z.n_elem; ++i) out[i] = log_sigmoid(z[i]);
  return out;
}

arma::rowvec sigmoid(const arma::rowvec& z) {
  arma::rowvec out(z.n_elem);
  for (std::size_t i = 0; i < z.n_elem; ++i) {
    const double e = std::exp(-std::abs(z[i]));  // in (0, 1]: never overflows
    out[i] = z[i] >= 0 ? 1 / (1 + e) : e / (1 + e);
  }
  return out;
}

arma::rowvec bernoulli_log_pmf(const arma::rowvec& y, const arma::rowvec& logit) {
  if (y.n_elem != logit.n_elem) throw InvalidArgument("bernoulli_log_pmf: y and logit differ in length");
  arma::rowvec out(y.n_elem);
  // y log s(h) + (1 - y) log s(-h); a zero weight never multiplies a -inf.
  for (std::size_t i = 0; i < y.n_elem; ++i) {
    const double h = logit[i];
    double v = 0;
    if (y[i] != 0) v += y[i] * log_sigmoid(h);
    if (y[i] != 1) v += (1 - y[i]) * log_sigmoid(-h);
    out[i] = v;
  }
  return out;
}

double logistic_objective(const ExpertFamily& f, const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                          const arma::vec& eta) {
  return arma::accu(w % bernoulli_log_pmf(y, f.mean(X, eta)));
}

arma::vec logistic_gradient(const ExpertFamily& f, const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                            const arma::vec& eta) {
  const arma::rowvec p = sigmoid(f.mean(X, eta));
  return f.jacobian(X, eta) * (w % (y - p)).t();
}

LogisticMStepResult logistic_m_step(const ExpertFamily& f, const arma::mat& X, const arma::rowvec& y,
                                    const arma::rowvec& w, arma::vec& eta, const ExpertMStepOptions& opt) {
  LogisticMStepResult res;
  double q = logistic_objective(f, X, y, w, eta);
  res.q_before = res.q_after = q;
  if (!std::isfinite(q)) return res;
  const bool linear = f.linear_in_params();
  // Linear h: Newton = IRLS, undamped unless a step fails to raise Q.
  double lambda = linear ? 0.0 : opt.lm_lambda0;
  const int steps = opt.lm_steps;
  for (int step = 0; step < steps; ++step) {
    const arma::rowvec p = sigmoid(f.mean(X, eta));
    const arma::mat J = f.jacobian(X, eta);  // q x n
    const arma::vec g = J * (w % (y - p)).t();
    const arma::mat JW = J.each_row() % (w % p % (1 - p));
    const arma::mat A = JW * J.t();
    if (!A.is_finite() || !g.is_finite()) break;
    arma::vec dA = A.diag();
    const double dmean = std::max(arma::mean(dA), 1e-300);
    for (auto& v : dA) v = std::max(v, 1e-12 * dmean);
    bool accepted = false;
    for (int t = 0; t < opt.lm_max_tries; ++t) {
      arma::mat M = A;
      // lambda = 0 keeps a round-off ridge so that chol sees a definite matrix.
      M.diag() += (lambda > 0 ? lambda : 1e-12) * dA;
      arma::mat L;
      if (arma::chol(L, M, "lower")) {
        const arma::vec z = arma::solve(arma::trimatl(L), g);
        const arma::vec delta = arma::solve(arma::trimatu(L.t()), z);
        const arma::vec cand = eta + delta;
        if (cand.is_finite()) {
          const double qc = logistic_objective(f, X, y, w, cand);
          if (std::isfinite(qc) && qc > q) {
            const double rel = (qc - q) / std::max(std::abs(q), 1e-300);
            eta = cand;
            q = qc;
            lambda = lambda > 0 ? std::max(lambda / 10, 1e-12) : 0.0;
            accepted = true;
            res.accepted_steps++;
            if (rel < 1e-12) step = steps;
            break;
          }
        }
      }
      lambda = lambda > 0 ? lambda * 10 : opt.lm_lambda0;
    }
    if (!accepted) break;
  }
  res.q_after = q;
  return res;
}

arma::vec logistic_initial(const ExpertFamily& f, const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                           Rng& rng) {
  ExpertMStepOptions opt;
  opt.lm_steps = 30;
  arma::vec best;
  double best_q = -kInf;
  for (int attempt = 0; attempt < 5; ++attempt) {
    arma::vec eta(f.n_params(), arma::fill::zeros);
    // Start 0 is the zero vector for linear families (the usual IRLS start);
    // random small starts otherwise (ffn needs broken symmetry).
    if (attempt > 0 || !f.linear_in_params())
      for (auto& v : eta) v = rng.normal(0, 0.5);
    logistic_m_step(f, X, y, w, eta, opt);
    const double q = logistic_objective(f, X, y, w, eta);
    if (std::isfinite(q) && q > best_q) {
      best_q = q;
      best = eta;
    }
    if (f.linear_in_params() && attempt >= 1) break;  // concave: one more start is plenty
  }
  if (best.is_empty()) best.zeros(f.n_params());
  return best;
}

void check_binary_response(const arma::rowvec& y, const std::string& source, const std::vector<std::size_t>& lines) {
  for (std::size_t i = 0; i < y.n_elem; ++i) {
    if (y[i] == 0 || y[i] == 1) continue;
    const std::size_t line = i < lines.size() ? lines[i] : i + 2;
    throw InputError(source, line, 0,
                     "Bernoulli response: y must be 0 or 1; got " + format_double(y[i]) + " (observation " +
                         std::to_string(i + 1) + ")");
  }
}

}  // namespace moerate
