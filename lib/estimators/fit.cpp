#include "moerate/estimators/fit.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <numeric>
#include <optional>

#ifdef _OPENMP
#include <omp.h>

#include "moerate/core/parallel.hpp"
#endif

#include "moerate/core/profile.hpp"

#include "moerate/io/csv.hpp"
#include "moerate/core/error.hpp"
#include "moerate/estimators/lse.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/model/response.hpp"

namespace moerate {

std::string init_kind_name(InitKind k) {
  switch (k) {
    case InitKind::random: return "random";
    case InitKind::kmeans: return "kmeans";
    case InitKind::model: return "model";
    case InitKind::near_truth: return "near-truth";
    case InitKind::split: return "split";
  }
  return "?";
}

InitSpec InitSpec::parse(const std::string& text) {
  InitSpec s;
  if (text.find('+') != std::string::npos && text.rfind("model:", 0) != 0 && text.rfind("near-truth:", 0) != 0) {
    // A cycle of truth-free kinds: "kmeans+split".
    std::size_t a = 0;
    while (a <= text.size()) {
      const std::size_t b = std::min(text.find('+', a), text.size());
      const std::string part = text.substr(a, b - a);
      if (part == "random") s.cycle.push_back(InitKind::random);
      else if (part == "kmeans") s.cycle.push_back(InitKind::kmeans);
      else if (part == "split") s.cycle.push_back(InitKind::split);
      else
        throw InvalidArgument("init: in '" + text + "', '" + part +
                              "' cannot be combined (starts cycle through random, kmeans and split)");
      a = b + 1;
    }
    s.kind = s.cycle.front();
    return s;
  }
  if (text == "random") s.kind = InitKind::random;
  else if (text == "kmeans") s.kind = InitKind::kmeans;
  else if (text == "split") s.kind = InitKind::split;
  else if (text.rfind("model:", 0) == 0) s.kind = InitKind::model, s.model_path = text.substr(6);
  else if (text.rfind("near-truth:", 0) == 0) s.kind = InitKind::near_truth, s.model_path = text.substr(11);
  else if (text == "near-truth") s.kind = InitKind::near_truth;
  else
    throw InvalidArgument("init: expected random, kmeans, split, model:FILE, near-truth:FILE or a cycle such as "
                          "kmeans+split; got '" + text + "'");
  if ((s.kind == InitKind::model) && s.model_path.empty())
    throw InvalidArgument("init: model:FILE needs a file name");
  return s;
}

std::string InitSpec::label() const {
  if (!cycle.empty()) {
    std::string out;
    for (const InitKind k : cycle) {
      if (!out.empty()) out += '+';
      out += init_kind_name(k);
    }
    return out;
  }
  if (kind == InitKind::near_truth)
    return "near-truth(s=" + format_double(gate_scale) + "/" + format_double(expert_scale) + ",g=" + format_double(exponent) + ")";
  return init_kind_name(kind);
}

InitKind InitSpec::kind_of_start(std::size_t s) const { return cycle.empty() ? kind : cycle[s % cycle.size()]; }

std::size_t InitSpec::pattern_of_start(std::size_t s) const {
  if (cycle.empty()) return s;
  std::size_t rank = 0;
  for (std::size_t t = 0; t < s; ++t) rank += kind_of_start(t) == kind_of_start(s);
  return rank;
}

bool InitSpec::uses(InitKind k) const {
  return cycle.empty() ? kind == k : std::find(cycle.begin(), cycle.end(), k) != cycle.end();
}

std::string InitSpec::start_label(std::size_t s) const {
  if (cycle.empty()) return label();
  return init_kind_name(kind_of_start(s));
}

void FitOptions::validate() const {
  if (n_experts < 1) fail("fit", "number of experts", "must be >= 1", n_experts);
  if (n_starts < 1) fail("fit", "number of starts", "must be >= 1", n_starts);
  if (!estimator_registry().count(estimator))
    throw InvalidArgument("fit: unknown estimator '" + estimator + "'");
  if (threads < 0) fail("fit", "threads", "must be >= 0", threads);
  if (!(prune_factor >= 0) || !std::isfinite(prune_factor)) fail("fit", "prune_factor", "must be finite and >= 0", prune_factor);
  if (init.uses(InitKind::split) && n_experts < 2)
    throw InvalidArgument("fit: split init needs k >= 2 experts (it splits one atom of a (k-1)-expert fit)");
  if (response == ModelKind::regression)
    throw InvalidArgument("fit: response must be gaussian or bernoulli (the regression model is --estimator lse)");
  if (response == ModelKind::bernoulli && estimator != "em")
    throw InvalidArgument("fit: Bernoulli experts are fitted by EM only (--estimator em); got '" + estimator + "'");
  em.validate();
}

namespace {

/// Standardised (x, y) as rows (d+1) x n.
arma::mat standardised_xy(const arma::mat& X, const arma::rowvec& y) {
  arma::mat Z = arma::join_cols(X, y);
  for (std::size_t r = 0; r < Z.n_rows; ++r) {
    const double m = arma::mean(Z.row(r));
    const double s = Z.n_cols > 1 ? arma::stddev(Z.row(r)) : 1.0;
    Z.row(r) = (Z.row(r) - m) / (s > 0 ? s : 1.0);
  }
  return Z;
}

/// Hard labels from k-means++ seeding and Lloyd iterations. Written here rather
/// than taken from arma::kmeans because that uses Armadillo's global RNG:
/// starts run in parallel and must be reproducible from their own seed.
std::vector<std::uint32_t> kmeans_labels(const arma::mat& Z, std::size_t k, Rng& rng, bool plus_plus, bool canonical) {
  const std::size_t n = Z.n_cols;
  arma::mat C(Z.n_rows, k);
  if (plus_plus) {
    C.col(0) = Z.col(rng.integer(0, n - 1));
    arma::rowvec d2(n, arma::fill::value(kInf));
    for (std::size_t c = 1; c < k; ++c) {
      for (std::size_t i = 0; i < n; ++i)
        d2[i] = std::min(d2[i], arma::accu(arma::square(Z.col(i) - C.col(c - 1))));
      arma::vec logw = arma::log(d2.t() + 1e-300);
      C.col(c) = Z.col(rng.categorical_log(logw));
    }
  } else {
    for (std::size_t c = 0; c < k; ++c) C.col(c) = Z.col(rng.integer(0, n - 1));
  }
  std::vector<std::uint32_t> lab(n, 0);
  const int iters = plus_plus ? 50 : 1;
  for (int it = 0; it < iters; ++it) {
    // Squared distances via |z|^2 - 2 c.z + |c|^2, block by block (never a k x n matrix).
    const arma::vec c2 = arma::sum(arma::square(C), 0).t();
    std::vector<char> moved(n, 0);
    for_blocks(n, [&](std::size_t a, std::size_t b) {
      arma::mat D = -2 * C.t() * Z.cols(a, b - 1);
      D.each_col() += c2;
      for (std::size_t i = a; i < b; ++i) {
        const double* di = D.colptr(i - a);  // the first smallest, as index_min
        std::uint32_t best = 0;
        for (std::uint32_t c = 1; c < k; ++c)
          if (di[c] < di[best]) best = c;
        moved[i] = best != lab[i];
        lab[i] = best;
      }
    });
    const bool changed = std::find(moved.begin(), moved.end(), char(1)) != moved.end();
    arma::mat S(Z.n_rows, k, arma::fill::zeros);
    arma::vec cnt(k, arma::fill::zeros);
    const std::size_t m = Z.n_rows;
    for (std::size_t i = 0; i < n; ++i) {  // raw loops, the same sums in the same order
      double* s = S.colptr(lab[i]);
      const double* z = Z.colptr(i);
      for (std::size_t r = 0; r < m; ++r) s[r] += z[r];
      cnt[lab[i]] += 1;
    }
    for (std::size_t c = 0; c < k; ++c)
      if (cnt[c] > 0) C.col(c) = S.col(c) / cnt[c];
      else C.col(c) = Z.col(rng.integer(0, n - 1));  // re-seed an empty cluster
    if (!changed && it > 0) break;
  }
  if (!canonical) return lab;
  // Clusters numbered in the order of their first observation, so that one
  // partition has one labelling whichever seeds found it (fit: equal
  // partitions are one start when nothing random follows them).
  std::vector<std::uint32_t> order(k, std::uint32_t(k));
  std::uint32_t next = 0;
  for (std::size_t i = 0; i < n && next < k; ++i)
    if (order[lab[i]] == k) order[lab[i]] = next++;
  for (std::size_t c = 0; c < k; ++c)
    if (order[c] == k) order[c] = next++;  // empty clusters last
  for (auto& l : lab) l = order[l];
  return lab;
}

/// Whether a data-driven start is a function of its k-means partition alone
/// (model_from_responsibilities draws nothing: Gaussian experts whose initial()
/// does not draw). Its clusters are then numbered canonically, so that starts
/// whose k-means found the same partition are the same start (fit: run once);
/// otherwise k-means's own numbering stays (the families' random candidates
/// follow it, and changing it would change every such fit).
bool partition_is_start(const arma::mat& X, const FitOptions& opt) {
  if (opt.response == ModelKind::bernoulli) return false;  // logistic_initial draws
  return !make_expert_family(opt.expert, opt.covariates.expert_x(X).mat().n_rows)->initial_draws();
}

GaussianMoE model_from_responsibilities(const arma::mat& X, const arma::rowvec& y, const arma::mat& R,
                                        const FitOptions& opt, Rng& rng) {
  const std::size_t k = opt.n_experts;
  const Covariates& cov = opt.covariates;
  const Covariates::Rows xg = cov.gate_x(X), xe = cov.expert_x(X);  // X itself when shared
  auto gating = make_gating(opt.gating, k, xg.mat().n_rows);
  auto family = make_expert_family(opt.expert, xe.mat().n_rows);
  arma::mat eta(family->n_params(), k);
  arma::vec nu(k);
  const std::size_t n_obs = y.n_elem;
  const double var_y = y.n_elem > 1 ? std::max(arma::var(y), 1e-12) : 1.0;
  if (opt.response == ModelKind::bernoulli) {  // model/response.hpp: logistic fits, no variances
    for (std::size_t j = 0; j < k; ++j) eta.col(j) = logistic_initial(*family, xe.mat(), y, R.row(j) + 1e-8, rng);
    gating->init_from_responsibilities(xg.mat(), R);
    return GaussianMoE(std::move(gating), family, eta, arma::vec(k, arma::fill::ones), ModelKind::bernoulli, cov);
  }
  for (std::size_t j = 0; j < k; ++j) {
    arma::rowvec w = R.row(j) + 1e-8;
    eta.col(j) = family->initial(xe.mat(), y, w, rng);
    const double w_sum = arma::accu(w);
    w.reset();  // memory: w and the means are never held together
    // sum_i w_i r_i^2 with w_i = R_ji + 1e-8 and r_i = y_i - h_i formed where
    // they are added (no n-long vectors besides the means while the concurrent
    // starts initialise), in arma::accu's order: even and odd observations in
    // two sums, then added; the same bits as accu(w % r % r).
    const arma::rowvec h = family->mean(xe.mat(), eta.col(j));
    double s0 = 0, s1 = 0;
    std::size_t i = 0;
    for (; i + 1 < n_obs; i += 2) {
      const double r0 = y[i] - h[i], r1 = y[i + 1] - h[i + 1];
      s0 += ((R(j, i) + 1e-8) * r0) * r0;
      s1 += ((R(j, i + 1) + 1e-8) * r1) * r1;
    }
    if (i < n_obs) {
      const double r0 = y[i] - h[i];
      s0 += ((R(j, i) + 1e-8) * r0) * r0;
    }
    nu[j] = std::max((s0 + s1) / w_sum, 1e-3 * var_y);
  }
  gating->init_from_responsibilities(xg.mat(), R);
  return GaussianMoE(std::move(gating), family, eta, nu, ModelKind::gaussian, cov);
}

GaussianMoE near_truth_model(const GaussianMoE& truth, const arma::mat& X, const FitOptions& opt, Rng& rng,
                             std::size_t start_index) {
  const std::size_t k = opt.n_experts, ks = truth.n_experts();
  if (k < ks)
    throw InvalidArgument("near-truth init: the fit has " + std::to_string(k) + " experts but the truth has " +
                          std::to_string(ks) + " (need k >= k*)");
  if (truth.gating().family_json() != make_gating(opt.gating, k, truth.gate_dim())->family_json() ||
      truth.experts().family_json() != make_expert_family(opt.expert, truth.expert_dim())->family_json())
    throw InvalidArgument("near-truth init: the fitted families must equal the truth's");
  // Fitted atom i < k* -> true atom i; the E = k - k* extra atoms copy true atoms
  // by a pattern: start 0 takes the cyclic one (extra e -> e mod k*), start r the
  // r-th next of the k*^E patterns (extra e -> digit e of the pattern's code in
  // base k*), so that starts 0, 1, ... try every way of splitting the true atoms
  // (an over-fitted likelihood has a local maximum for each). The weight of a
  // true atom is split equally among its copies.
  std::vector<std::size_t> assign(k);
  std::vector<int> copies(ks, 0);
  for (std::size_t i = 0; i < ks; ++i) assign[i] = i;
  if (k > ks) {
    const std::size_t E = k - ks;
    // code = sum_e digit_e k*^e; beyond 2^62 patterns only the first ones are reached.
    std::uint64_t patterns = 1;
    std::size_t digits = 0;  // the extras the code spans
    while (digits < E && patterns <= (std::uint64_t{1} << 62) / ks) patterns *= ks, ++digits;
    std::uint64_t code = 0;
    for (std::size_t e = digits; e-- > 0;) code = code * ks + e % ks;
    code = (code + start_index) % patterns;
    for (std::size_t e = 0; e < E; ++e) {
      assign[ks + e] = e < digits ? static_cast<std::size_t>(code % ks) : e % ks;
      code /= ks;
    }
  }
  for (std::size_t i = 0; i < k; ++i) copies[assign[i]]++;
  const double scale = std::pow(static_cast<double>(X.n_cols), -opt.init.exponent);
  const double sg = opt.init.gate_scale * scale, se = opt.init.expert_scale * scale;
  json tj = truth.to_json();
  json out = tj;
  out["experts"] = json::array();
  for (std::size_t i = 0; i < k; ++i) {
    json e = tj["experts"][assign[i]];
    json& g = e["gate"];
    for (auto& [key, val] : g.items()) {
      if (val.is_number()) {
        double v = val.get<double>();
        if (key == "beta0") v -= std::log(static_cast<double>(copies[assign[i]]));
        val = v + rng.normal(0, sg);
      } else if (val.is_array()) {
        for (auto& x : val) x = x.get<double>() + rng.normal(0, sg);
      }
    }
    for (auto& [key, val] : e["expert"].items()) {
      if (val.is_number()) val = val.get<double>() + rng.normal(0, se);
      else if (val.is_array())
        for (auto& x : val) x = x.get<double>() + rng.normal(0, se);
    }
    if (e.contains("variance")) e["variance"] = std::abs(e["variance"].get<double>() + rng.normal(0, se)) + 1e-8;
    out["experts"].push_back(e);
  }
  return GaussianMoE::from_json(out, "near-truth start");
}

}  // namespace

namespace {

/// `labels`: a data-driven start's k-means labels when computed beforehand
/// (fit: KmeansStart), with `rng` in the state they left it in.
GaussianMoE start_model(const arma::mat& X, const arma::rowvec& y, const FitOptions& opt, Rng& rng,
                        const GaussianMoE* truth, std::size_t start_index, const GaussianMoE* split_base,
                        const std::vector<std::uint32_t>* labels) {
  const std::size_t k = opt.n_experts, n = X.n_cols;
  if (n < k) throw InvalidArgument("fit: " + std::to_string(k) + " experts need at least as many observations; got n = " + std::to_string(n));
  const InitKind kind = opt.init.kind_of_start(start_index);
  switch (kind) {
    case InitKind::model: {
      GaussianMoE m = GaussianMoE::load(opt.init.model_path);
      if (m.n_experts() != k || m.dim() != X.n_rows)
        throw InvalidArgument("init: model file " + opt.init.model_path + " has k = " + std::to_string(m.n_experts()) +
                              ", d = " + std::to_string(m.dim()) + "; the fit needs k = " + std::to_string(k) +
                              ", d = " + std::to_string(X.n_rows));
      return m;
    }
    case InitKind::near_truth: {
      if (!truth) throw InvalidArgument("near-truth init: no true model given");
      return near_truth_model(*truth, X, opt, rng, start_index);
    }
    case InitKind::split: {
      std::optional<GaussianMoE> own;
      if (!split_base) split_base = &own.emplace(split_base_model(X, y, opt));  // checks k >= 2
      if (split_base->n_experts() + 1 != k)
        throw InvalidArgument("split init: the base has " + std::to_string(split_base->n_experts()) +
                              " experts; a split start of k = " + std::to_string(k) + " needs k - 1");
      GaussianMoE m = near_truth_model(*split_base, X, opt, rng, opt.init.pattern_of_start(start_index));
      // The base may sit on a bound, and the perturbation may leave the box: clamp.
      if (opt.em.bounds.any()) m.set_flat_params(opt.em.bounds.box(m).clamp(m.flat_params()));
      return m;
    }
    case InitKind::random:
    case InitKind::kmeans: {
      std::vector<std::uint32_t> own;
      if (!labels) {
        const arma::mat Z = standardised_xy(X, y);  // freed before R is built
        own = kmeans_labels(Z, k, rng, kind == InitKind::kmeans, partition_is_start(X, opt));
        labels = &own;
      }
      arma::mat R(k, n, arma::fill::value(0.05 / k));
      for (std::size_t i = 0; i < n; ++i) R((*labels)[i], i) += 0.95;
      return model_from_responsibilities(X, y, R, opt, rng);
    }
  }
  throw InvalidArgument("fit: unknown initialisation");
}

}  // namespace

namespace {
FitResult fit_impl(const arma::mat& X, const arma::rowvec& y, const FitOptions& opt, const GaussianMoE* truth,
                   bool with_certificate);
}

GaussianMoE split_base_model(const arma::mat& X, const arma::rowvec& y, const FitOptions& opt) {
  if (opt.n_experts < 2) throw InvalidArgument("split init: needs k >= 2 experts (it splits one atom of a (k-1)-expert fit)");
  FitOptions bo = opt;
  bo.n_experts = opt.n_experts - 1;
  int split_starts = 0;
  for (int s = 0; s < opt.n_starts; ++s) split_starts += opt.init.kind_of_start(static_cast<std::size_t>(s)) == InitKind::split;
  if (bo.n_experts < 3) {
    // k-means starts: one per split start, at least two (one for a single expert).
    bo.init = InitSpec{};
    bo.n_starts = bo.n_experts < 2 ? 1 : std::max(2, split_starts);
  } else {
    // A base of three or more experts may itself be over-fitted, with the many
    // maxima split starts avoid: fit it the same way, recursively down to a
    // two-expert base. Its own starts: k-means and split alternating, one split
    // start per atom of its base, and at least as many starts as split starts here.
    bo.init = InitSpec::parse("kmeans+split");
    bo.n_starts = std::max(2 * static_cast<int>(bo.n_experts - 1), split_starts);
  }
  bo.seed = derive_seed(opt.seed, {0x5b117ULL, static_cast<std::uint64_t>(bo.n_experts)});
  return fit_impl(X, y, bo, nullptr, false).model;
}

namespace {

bool data_driven(InitKind k) { return k == InitKind::kmeans || k == InitKind::random; }

/// A data-driven start's k-means labels and its generator after them (the start
/// goes on drawing from it), computed before the starts' EM runs.
struct KmeansStart {
  std::vector<std::uint32_t> labels;
  Rng rng;
};

GaussianMoE checked_initial_model(const arma::mat& X, const arma::rowvec& y, const FitOptions& opt, Rng& rng,
                                  const GaussianMoE* truth, std::size_t start_index, const GaussianMoE* split_base,
                                  const std::vector<std::uint32_t>* labels) {
  GaussianMoE m = start_model(X, y, opt, rng, truth, start_index, split_base, labels);
  if (m.covariates() != opt.covariates)
    throw InvalidArgument("init: the start reads covariates (" + m.covariates().describe() + ") but the fit reads (" +
                          opt.covariates.describe() + ")");
  if ((opt.response == ModelKind::bernoulli) != (m.kind() == ModelKind::bernoulli))
    throw InvalidArgument("init: the start is a " + model_kind_name(m.kind()) + " model but the fit's response is " +
                          model_kind_name(opt.response));
  // Least squares works on the regression model (models.md 5.3): same gating
  // and eta, noise_variance = RSS/n.
  if (opt.estimator == "lse") return as_regression_model(m, X, y);
  return m;
}

}  // namespace

GaussianMoE initial_model(const arma::mat& X, const arma::rowvec& y, const FitOptions& opt, Rng& rng,
                          const GaussianMoE* truth, std::size_t start_index, const GaussianMoE* split_base) {
  return checked_initial_model(X, y, opt, rng, truth, start_index, split_base, nullptr);
}

EstimatorRun quasi_newton_run(double objective, int iterations, StopReason stop_reason) {
  EstimatorRun e;
  e.objective = objective;
  e.iterations = iterations;
  e.stop_reason = stop_reason;
  e.max_decrease = 0;
  e.em.stop_reason = stop_reason;
  e.em.iterations = iterations;
  e.em.log_likelihood = objective;
  return e;
}

std::map<std::string, EstimatorInfo>& estimator_registry() {
  static std::map<std::string, EstimatorInfo> r;
  return r;
}

EstimatorRun em_run(EMResult em) {
  EstimatorRun r;
  r.objective = em.log_likelihood;
  r.iterations = em.iterations;
  r.stop_reason = em.stop_reason;
  r.max_decrease = em.max_decrease;
  r.em = std::move(em);
  return r;
}

bool register_estimator(const std::string& name, const std::string& description, EstimatorFn f) {
  estimator_registry()[name] = EstimatorInfo{name, description, std::move(f)};
  return true;
}

MOERATE_REGISTER_ESTIMATOR("em", "maximum likelihood by EM (Newton gate M-step, WLS/LM expert M-step)",
                           [](GaussianMoE& m, const arma::mat& X, const arma::rowvec& y,
                              const FitOptions& opt) { return em_run(run_em(m, X, y, opt.em)); });

FitResult fit(const arma::mat& X, const arma::rowvec& y, const FitOptions& opt, const GaussianMoE* truth) {
  return fit_impl(X, y, opt, truth, true);
}

namespace {

/// fit(); `with_certificate` false skips the certificate (a split start's base
/// fit is a start, not an estimate).
FitResult fit_impl(const arma::mat& X, const arma::rowvec& y, const FitOptions& opt, const GaussianMoE* truth,
                   bool with_certificate) {
  opt.validate();
  if (X.n_cols != y.n_elem) throw InvalidArgument("fit: X and y have different numbers of observations");
  if (!opt.covariates.shared() && X.n_rows != opt.covariates.dim())
    throw InvalidArgument("fit: the data have " + std::to_string(X.n_rows) + " covariate rows but the covariates (" +
                          opt.covariates.describe() + ") name " + std::to_string(opt.covariates.dim()) + " columns");
  if (X.n_cols < opt.n_experts)
    throw InvalidArgument("fit: k = " + std::to_string(opt.n_experts) + " experts need at least k observations; got n = " +
                          std::to_string(X.n_cols));
  std::unique_ptr<GaussianMoE> loaded_truth;
  if (opt.init.kind == InitKind::near_truth && !truth) {
    loaded_truth = std::make_unique<GaussianMoE>(GaussianMoE::load(opt.init.model_path));
    truth = loaded_truth.get();
  }
  const auto& est = estimator_registry().at(opt.estimator);
  const auto t0 = std::chrono::steady_clock::now();
  const int S = opt.n_starts;
  // Split starts share one (k-1)-expert fit, made before the starts run (only
  // when one of the S starts is a split start: a cycle longer than S may not reach it).
  bool any_split = false;
  for (int s = 0; s < S; ++s) any_split |= opt.init.kind_of_start(static_cast<std::size_t>(s)) == InitKind::split;
  std::optional<GaussianMoE> split_base;
  // MOERATE_PROFILE (core/profile.hpp): this fit's phases, unless it is a split
  // base's fit (the only fit without a certificate), counted in its own phase.
  const bool top = with_certificate;
  using profile::Counter;
  profile::Timer fit_timer(Counter::fit_seconds, top);
  if (any_split) {
    profile::Timer t(Counter::split_base_seconds, top);
    split_base.emplace(split_base_model(X, y, opt));
  }
  profile::Timer init_timer(Counter::init_seconds, top);
  std::vector<std::unique_ptr<GaussianMoE>> models(S);
  std::vector<StartSummary> starts(S);
  std::vector<EstimatorRun> runs(S);
  std::vector<std::string> errors(S);
  std::atomic<bool> cancelled{false};
#ifdef _OPENMP
  const int nthreads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
#endif
  // The data-driven starts' k-means first, all sharing one standardised copy of
  // (x, y), freed before any EM runs (memory: one copy, not one per concurrent
  // start; the same numbers as each start running its own k-means).
  std::vector<std::optional<KmeansStart>> km(S);
  std::vector<double> km_seconds(S, 0.0);
  bool any_data_driven = false;
  for (int s = 0; s < S; ++s) any_data_driven |= data_driven(opt.init.kind_of_start(static_cast<std::size_t>(s)));
  if (any_data_driven) {
    const bool canonical = partition_is_start(X, opt);
    const arma::mat Z = standardised_xy(X, y);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic) num_threads(nthreads) if (S > 1)
#endif
    for (int s = 0; s < S; ++s) {
      const InitKind kind = opt.init.kind_of_start(static_cast<std::size_t>(s));
      if (!data_driven(kind) || cancelled) continue;
      const auto ts = std::chrono::steady_clock::now();
      try {
        throw_if_cancelled(opt.em.cancel);
        Rng rng(derive_seed(opt.seed, {static_cast<std::uint64_t>(s)}));
        auto labels = kmeans_labels(Z, opt.n_experts, rng, kind == InitKind::kmeans, canonical);
        km[s].emplace(KmeansStart{std::move(labels), rng});
      } catch (const Cancelled&) {
        cancelled = true;
      } catch (const std::exception& e) {
        errors[s] = e.what();
      }
      km_seconds[s] = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    }
    if (cancelled) throw Cancelled();
  }
  // The starts' initial models first, then their runs: a start equal in every
  // bit to an earlier one (k-means from different seeds often ends in the same
  // partition, and a family without random candidates, such as linear experts,
  // then gives the same start) is the same run and is not run twice.
  std::vector<double> init_seconds(S, 0.0);
  auto record_error = [&](int s, const std::exception& e) {
    errors[s] = e.what();
    starts[s].index = s;
    starts[s].stop_reason = StopReason::non_finite;
    starts[s].objective = -kInf;
  };
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic) num_threads(nthreads) if (S > 1)
#endif
  for (int s = 0; s < S; ++s) {
    const auto ts = std::chrono::steady_clock::now();
    try {
      throw_if_cancelled(opt.em.cancel);
      if (!errors[s].empty()) throw InvalidArgument(errors[s]);  // its k-means failed
      Rng rng = km[s] ? km[s]->rng : Rng(derive_seed(opt.seed, {static_cast<std::uint64_t>(s)}));
      auto m = std::make_unique<GaussianMoE>(checked_initial_model(X, y, opt, rng, truth, static_cast<std::size_t>(s),
                                                                   split_base ? &*split_base : nullptr,
                                                                   km[s] ? &km[s]->labels : nullptr));
      km[s].reset();
      if (opt.em.bounds.any() && (opt.init.kind == InitKind::model || opt.init.kind == InitKind::near_truth)) {
        // A start given by the user must lie in the parameter space.
        const Box b = opt.em.bounds.box(*m);
        const arma::vec th = m->flat_params();
        const auto names = m->flat_names();
        for (std::size_t i = 0; i < th.n_elem; ++i)
          if (th[i] < b.lower[i] || th[i] > b.upper[i])
            throw InvalidArgument("fit: the bounds exclude the start (" + opt.init.label() + "): " + names[i] + " = " +
                                  to_text(th[i]) + " is outside [" + to_text(b.lower[i]) + ", " + to_text(b.upper[i]) +
                                  "]" + (names[i].find("log_variance") != std::string::npos ? " (log scale)" : ""));
      }
      starts[s].index = s;
      starts[s].init = opt.init.start_label(static_cast<std::size_t>(s));
      starts[s].objective_initial =
          m->kind() != ModelKind::regression ? m->log_likelihood(X, y)
                                           : -arma::accu(arma::square(y - m->regression_function(X)));
      models[s] = std::move(m);
    } catch (const Cancelled&) {
      cancelled = true;  // exceptions never leave an OpenMP region: rethrown below
    } catch (const std::exception& e) {
      record_error(s, e);
    }
    init_seconds[s] = km_seconds[s] + std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
  }
  if (cancelled) throw Cancelled();
  std::vector<int> same_as(S, -1);
  std::vector<arma::vec> theta(S);
  for (int s = 0; s < S; ++s) {
    if (!models[s]) continue;
    theta[s] = models[s]->flat_params();
    for (int t = 0; t < s; ++t)  // a copy's model is released: it is never matched again
      if (models[t] && theta[t].n_elem == theta[s].n_elem &&
          std::memcmp(theta[t].memptr(), theta[s].memptr(), theta[s].n_elem * sizeof(double)) == 0) {
        same_as[s] = t;
        models[s].reset();
        break;
      }
  }
  int running = 0;
  for (int s = 0; s < S; ++s) running += models[s] != nullptr;
  // EM's starts in rounds, pruning the dominated ones (fit.hpp, prune_factor):
  // each round runs every live start to the next checkpoint (EM steps 15, 30,
  // 60, ...), then compares them. The decisions depend only on the starts'
  // states at the checkpoints, never on timing: the same fit for every thread
  // count, and a start that is not pruned ends in every bit as if run alone.
  const bool prune = opt.prune_factor > 0 && opt.estimator == "em" && opt.response == ModelKind::gaussian && running > 1;
  std::vector<EMRunState> em_runs(prune ? S : 0);
  std::vector<double> at_checkpoint(S, -kInf);  // a start's log-likelihood at the last checkpoint
  std::vector<char> live(S);  // still to run: not failed, not a copy, not finished, not pruned
  for (int s = 0; s < S; ++s) live[s] = models[s] != nullptr;
  init_timer.stop();
  profile::Timer starts_timer(Counter::starts_seconds, top);
  std::vector<std::int64_t> run_ns(S, 0);  // MOERATE_PROFILE: each start's CPU time
  for (int checkpoint = kFirstCheckpoint;; checkpoint *= 2) {
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic) num_threads(nthreads) if (S > 1)
#endif
    for (int s = 0; s < S; ++s) {
      if (!live[s]) continue;
      const auto ts = std::chrono::steady_clock::now();
      const std::int64_t cpu0 = top && profile::enabled() ? profile::thread_cpu_ns() : 0;
      try {
        throw_if_cancelled(opt.em.cancel);
        if (!prune) {
          runs[s] = est.run(*models[s], X, y, opt);
          live[s] = 0;
        } else if (run_em_until(*models[s], X, y, opt.em, em_runs[s], checkpoint)) {
          runs[s] = em_run(std::move(em_runs[s].res));
          live[s] = 0;
        }
      } catch (const Cancelled&) {
        cancelled = true;
      } catch (const std::exception& e) {
        models[s].reset();
        live[s] = 0;
        record_error(s, e);
      }
      starts[s].seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
      if (top && profile::enabled()) run_ns[s] += profile::thread_cpu_ns() - cpu0;
    }
    if (cancelled) throw Cancelled();
    if (!prune || std::find(live.begin(), live.end(), 1) == live.end()) break;
    double best_ll = -kInf;  // every start's log-likelihood so far (EM never lowers it)
    for (int s = 0; s < S; ++s)
      if (models[s]) best_ll = std::max(best_ll, live[s] ? em_runs[s].res.log_likelihood : runs[s].objective);
    for (int s = 0; s < S; ++s) {
      if (!models[s] || !live[s]) continue;
      const double ll = em_runs[s].res.log_likelihood, gap = best_ll - ll, gain = ll - at_checkpoint[s];
      at_checkpoint[s] = ll;
      if (gap > kPruneMinGap && gap > opt.prune_factor * gain) {
        runs[s] = em_run(std::move(em_runs[s].res));
        runs[s].stop_reason = StopReason::dominated;
        live[s] = 0;
      }
    }
  }
  starts_timer.stop();
  for (int s = 0; s < S; ++s) {
    starts[s].seconds += init_seconds[s];
    if (!models[s]) continue;
    starts[s].objective = runs[s].objective;
    starts[s].iterations = runs[s].iterations;
    starts[s].stop_reason = runs[s].stop_reason;
    starts[s].max_decrease = runs[s].max_decrease;
  }
  for (int s = 0; s < S; ++s) {
    const int t = same_as[s];
    if (t < 0) continue;
    const std::string init = starts[s].init;
    const double initial = starts[s].objective_initial;
    starts[s] = starts[t];
    starts[s].index = s;
    starts[s].init = init;
    starts[s].objective_initial = initial;
    starts[s].same_as = t;
    starts[s].seconds = init_seconds[s];
    errors[s] = errors[t];
  }
  int best = -1;
  for (int s = 0; s < S; ++s)
    if (models[s] && std::isfinite(starts[s].objective) && (best < 0 || starts[s].objective > starts[best].objective))
      best = s;
  if (top && best >= 0 && profile::enabled()) {
    for (int s = 0; s < S; ++s) {
      if (!models[s]) continue;
      const bool pruned = runs[s].stop_reason == StopReason::dominated;
      const bool at_best = !pruned && starts[s].objective >= starts[best].objective - 1e-3;
      profile::add(pruned ? Counter::pruned_seconds : at_best ? Counter::best_seconds : Counter::lower_seconds, run_ns[s]);
      profile::add(pruned ? Counter::pruned_polish_seconds
                          : at_best ? Counter::best_polish_seconds : Counter::lower_polish_seconds,
                   runs[s].em.newton_cpu_ns);
      profile::add(pruned ? Counter::em_steps_pruned : Counter::em_steps, runs[s].iterations);
      profile::add(Counter::newton_steps, runs[s].em.newton_steps);
      profile::add(Counter::polish_calls, runs[s].em.newton_calls);
      profile::add(Counter::polish_trials, runs[s].em.newton_trials);
    }
  }
  if (best < 0) {
    // Every start failed: a configuration error is reported as such.
    for (const auto& e : errors)
      if (!e.empty()) throw InvalidArgument(e);
    throw InvalidArgument("fit: every start failed (non-finite objective)");
  }
  FitResult r{*models[best]};
  r.estimator = opt.estimator;
  r.n_obs = X.n_cols;
  r.starts = starts;
  r.best_start = best;
  r.prune_factor = opt.prune_factor;
  r.iterations = runs[best].iterations;
  r.stop_reason = runs[best].stop_reason;
  r.em = runs[best].em;
  const GaussianMoE& m = r.model;
  r.rss = arma::accu(arma::square(y - m.regression_function(X)));
  r.n_params = m.flat_params().n_elem;
  const double n = static_cast<double>(X.n_cols);
  if (m.kind() != ModelKind::regression) {
    r.log_likelihood = m.log_likelihood(X, y);
  } else {
    r.log_likelihood = -0.5 * n * (std::log(2 * M_PI * r.rss / n) + 1);  // profile Gaussian likelihood
    r.n_params += 1;
  }
  r.aic = 2.0 * r.n_params - 2 * r.log_likelihood;
  r.bic = std::log(n) * r.n_params - 2 * r.log_likelihood;
  CertifyOptions co;
  co.score_tol = opt.em.score_tol;
  co.variance_floor_abs = r.em.variance_floor_abs;
  if (opt.em.bounds.any()) co.box = opt.em.bounds.box(m);
  if (with_certificate) {
    profile::Timer t(Counter::certificate_seconds, top);
    r.certificate = certify(m, X, y, r.stop_reason, r.iterations, runs[best].em.ll_change, runs[best].max_decrease,
                            r.n_params, co);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace

json FitResult::to_json() const {
  json j = model.to_json();
  json f;
  f["estimator"] = estimator;
  f["log_likelihood"] = log_likelihood;
  f["n_obs"] = n_obs;
  f["n_params"] = n_params;
  f["iterations"] = iterations;
  f["stop_reason"] = stop_reason_name(stop_reason);
  f["aic"] = aic;
  f["bic"] = bic;
  f["rss"] = rss;
  f["best_start"] = best_start;
  f["prune_factor"] = prune_factor;
  f["seconds"] = seconds;
  f["variance_floor"] = em.variance_floor_abs;
  f["floored_variances"] = em.floored_variances;
  f["max_loglik_decrease"] = em.max_decrease;
  f["squarem_cycles"] = em.cycles;
  f["newton_steps"] = em.newton_steps;
  f["certificate"] = certificate.to_json();
  json st = json::array();
  for (const auto& s : starts) {
    st.push_back({{"start", s.index},
                  {"init", s.init},
                  {"objective_initial", std::isfinite(s.objective_initial) ? json(s.objective_initial) : json(nullptr)},
                  {"objective", std::isfinite(s.objective) ? json(s.objective) : json(nullptr)},
                  {"iterations", s.iterations},
                  {"stop_reason", stop_reason_name(s.stop_reason)},
                  {"max_loglik_decrease", s.max_decrease},
                  {"seconds", s.seconds}});
    if (s.same_as >= 0) st.back()["same_as"] = s.same_as;
  }
  f["starts"] = st;
  // Top-level keys promised by the CLI (also inside "fit").
  j["log_likelihood"] = log_likelihood;
  j["n_obs"] = n_obs;
  j["iterations"] = iterations;
  j["stop_reason"] = stop_reason_name(stop_reason);
  j["certified"] = certificate.certified;
  j["aic"] = aic;
  j["bic"] = bic;
  j["fit"] = f;
  return j;
}

std::vector<std::size_t> match_experts(const GaussianMoE& fitted, const GaussianMoE& reference) {
  const std::size_t k = reference.n_experts();
  if (fitted.n_experts() != k) throw InvalidArgument("match_experts: different numbers of experts");
  const auto fa = fitted.atoms(), ra = reference.atoms();
  const auto& fam = fitted.experts();
  arma::mat cost(k, k);
  for (std::size_t i = 0; i < k; ++i)
    for (std::size_t j = 0; j < k; ++j) {
      double best = kInf;
      // Canonical forms (relu's scaling), then the nearest equivalent.
      const arma::vec rj = reference.experts().canonical(ra[j].eta);
      for (const auto& e : fam.equivalents(fam.canonical(fa[i].eta)))
        best = std::min(best, arma::norm(e - rj));
      const double dl = arma::norm(fa[i].location - ra[j].location);
      cost(i, j) = std::sqrt(best * best + dl * dl + std::pow(fa[i].nu - ra[j].nu, 2));
    }
  std::vector<std::size_t> perm(k);
  std::iota(perm.begin(), perm.end(), 0);
  std::vector<std::size_t> best_perm = perm;
  if (k <= 8) {
    double best = kInf;
    do {
      double c = 0;
      for (std::size_t j = 0; j < k; ++j) c += cost(perm[j], j);
      if (c < best) best = c, best_perm = perm;
    } while (std::next_permutation(perm.begin(), perm.end()));
  } else {
    std::vector<bool> used(k, false);
    for (std::size_t j = 0; j < k; ++j) {
      std::size_t bi = 0;
      double bc = kInf;
      for (std::size_t i = 0; i < k; ++i)
        if (!used[i] && cost(i, j) < bc) bc = cost(i, j), bi = i;
      used[bi] = true;
      best_perm[j] = bi;
    }
  }
  return best_perm;
}

}  // namespace moerate
