#include "moerate/model/model.hpp"

#include "moerate/io/files.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "moerate/core/error.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/core/parallel.hpp"
#include "moerate/model/response.hpp"

namespace moerate {

std::string model_kind_name(ModelKind k) {
  switch (k) {
    case ModelKind::gaussian: return "gaussian";
    case ModelKind::regression: return "regression";
    case ModelKind::bernoulli: return "bernoulli";
  }
  return "?";
}

ModelKind parse_model_kind(const std::string& text) {
  if (text == "gaussian") return ModelKind::gaussian;
  if (text == "regression") return ModelKind::regression;
  if (text == "bernoulli") return ModelKind::bernoulli;
  throw InvalidArgument("response: expected gaussian, regression or bernoulli; got '" + text + "'");
}

GaussianMoE::GaussianMoE(std::unique_ptr<Gating> gating, std::shared_ptr<const ExpertFamily> experts,
                         arma::mat eta, arma::vec nu, ModelKind kind, Covariates covariates)
    : gating_(std::move(gating)), experts_(std::move(experts)), eta_(std::move(eta)),
      nu_(std::move(nu)), kind_(kind), covariates_(std::move(covariates)) {
  validate();
}

GaussianMoE::GaussianMoE(const GaussianMoE& o)
    : gating_(o.gating_->clone()), experts_(o.experts_), eta_(o.eta_), nu_(o.nu_), kind_(o.kind_),
      noise_variance_(o.noise_variance_), covariates_(o.covariates_) {}

GaussianMoE& GaussianMoE::operator=(const GaussianMoE& o) {
  if (this != &o) {
    gating_ = o.gating_->clone();
    experts_ = o.experts_;
    eta_ = o.eta_;
    nu_ = o.nu_;
    kind_ = o.kind_;
    noise_variance_ = o.noise_variance_;
    covariates_ = o.covariates_;
  }
  return *this;
}

void GaussianMoE::validate() const {
  const std::string fn = "GaussianMoE";
  if (!gating_ || !experts_) throw InvalidArgument(fn + ": gating and expert family are required");
  if (covariates_.shared()) {
    if (gating_->dim() != experts_->dim())
      fail(fn, "expert family dimension", "must equal the gating dimension " + std::to_string(gating_->dim()),
           experts_->dim());
  } else {
    if (gating_->dim() != covariates_.gate_rows().n_elem)
      fail(fn, "gating dimension", "must equal the number of gate columns " +
                                       std::to_string(covariates_.gate_rows().n_elem) + " (" + covariates_.describe() + ")",
           gating_->dim());
    if (experts_->dim() != covariates_.expert_rows().n_elem)
      fail(fn, "expert family dimension", "must equal the number of expert columns " +
                                              std::to_string(covariates_.expert_rows().n_elem) + " (" +
                                              covariates_.describe() + ")",
           experts_->dim());
  }
  const std::size_t k = gating_->n_experts();
  if (eta_.n_rows != experts_->n_params() || eta_.n_cols != k)
    throw InvalidArgument(fn + ": eta must be " + std::to_string(experts_->n_params()) + " x " +
                          std::to_string(k) + "; got " + std::to_string(eta_.n_rows) + " x " +
                          std::to_string(eta_.n_cols));
  for (std::size_t j = 0; j < k; ++j)
    experts_->validate(eta_.col(j), fn + ": expert " + std::to_string(j + 1));
  if (kind_ == ModelKind::gaussian) {
    if (nu_.n_elem != k) fail(fn, "number of variances", "must equal " + std::to_string(k), nu_.n_elem);
    for (std::size_t j = 0; j < k; ++j)
      check_positive(fn, "variance of expert " + std::to_string(j + 1), nu_[j]);
  }
}

void GaussianMoE::set_covariates(Covariates c) {
  std::swap(covariates_, c);
  try {
    validate();
  } catch (...) {
    std::swap(covariates_, c);
    throw;
  }
}

void GaussianMoE::set_noise_variance(double v) {
  if (!(v >= 0) || !std::isfinite(v)) fail("GaussianMoE", "noise variance", "must be >= 0", v);
  noise_variance_ = v;
}

arma::mat GaussianMoE::expert_means(const arma::mat& X) const {
  const Covariates::Rows xe = expert_x(X);
  arma::mat M(n_experts(), X.n_cols, arma::fill::none);
  for (std::size_t j = 0; j < n_experts(); ++j) M.row(j) = experts_->mean(xe.mat(), eta_.col(j));
  return M;
}

arma::mat GaussianMoE::log_joint(const arma::mat& X, const arma::rowvec& y) const {
  arma::mat L = log_weights(X);
  const Covariates::Rows xe = expert_x(X);
  const std::size_t k = n_experts(), n = X.n_cols;
  for (std::size_t j = 0; j < k; ++j) {  // one expert's means at a time (memory: n, not k x n)
    const arma::rowvec h = experts_->mean(xe.mat(), eta_.col(j));
    if (kind_ == ModelKind::bernoulli) {
      L.row(j) += bernoulli_log_pmf(y, h);
      continue;
    }
    const double c = -0.5 * (kLog2Pi + std::log(nu_[j])), nu = nu_[j];
    for (std::size_t i = 0; i < n; ++i) {
      const double r = y[i] - h[i];
      L(j, i) += c - 0.5 * (r * r) / nu;
    }
  }
  return L;
}

namespace {

/// A per-observation row computed over blocks of observations (memory: the
/// k x n temporaries of one block, not of all n; the same values).
template <class F>
arma::rowvec by_blocks(std::size_t n, F&& f) {
  arma::rowvec out(n, arma::fill::none);
  for_blocks(n, [&](std::size_t a, std::size_t b) { out.cols(a, b - 1) = f(a, b); });
  return out;
}

}  // namespace

arma::rowvec GaussianMoE::log_likelihood_obs(const arma::mat& X, const arma::rowvec& y) const {
  if (X.n_cols > kObsBlock)
    return by_blocks(X.n_cols, [&](std::size_t a, std::size_t b) {
      return log_likelihood_obs(X.cols(a, b - 1), y.cols(a, b - 1));
    });
  return log_sum_exp_cols(log_joint(X, y));
}

double GaussianMoE::log_likelihood(const arma::mat& X, const arma::rowvec& y) const {
  // Summed per block, the blocks in order: the same number for every thread
  // count, and the same as EM's own evaluation.
  return sum_over_blocks(X.n_cols, [&](std::size_t a, std::size_t b, double* out) {
    const arma::rowvec l = log_sum_exp_cols(log_joint(column_view(X, a, b), row_view(y, a, b)));
    std::copy(l.begin(), l.end(), out);
  });
}

arma::mat GaussianMoE::responsibilities(const arma::mat& X, const arma::rowvec& y) const {
  arma::mat L = log_joint(X, y);
  normalise_log_cols(L);
  return exp_entries(std::move(L));
}

arma::rowvec GaussianMoE::regression_function(const arma::mat& X) const {
  if (X.n_cols > kObsBlock)
    return by_blocks(X.n_cols, [&](std::size_t a, std::size_t b) { return regression_function(X.cols(a, b - 1)); });
  const arma::mat P = exp_entries(log_weights(X));
  if (kind_ == ModelKind::bernoulli) {
    arma::mat S = expert_means(X);
    for (std::size_t j = 0; j < S.n_rows; ++j) S.row(j) = sigmoid(S.row(j));
    return arma::sum(P % S, 0);
  }
  return arma::sum(P % expert_means(X), 0);
}

arma::rowvec GaussianMoE::predictive_variance(const arma::mat& X) const {
  if (kind_ == ModelKind::regression) return arma::rowvec(X.n_cols, arma::fill::value(noise_variance_));
  if (X.n_cols > kObsBlock)
    return by_blocks(X.n_cols, [&](std::size_t a, std::size_t b) { return predictive_variance(X.cols(a, b - 1)); });
  if (kind_ == ModelKind::bernoulli) {
    const arma::rowvec p = regression_function(X);
    return p % (1 - p);
  }
  const arma::mat P = exp_entries(log_weights(X));
  const arma::mat H = expert_means(X);
  const arma::rowvec m = arma::sum(P % H, 0);
  arma::mat second = H % H;
  second.each_col() += nu_;
  return arma::sum(P % second, 0) - m % m;
}

arma::mat GaussianMoE::predictive_quantiles(const arma::mat& X, const std::vector<double>& probs) const {
  for (double p : probs)
    if (!(p > 0 && p < 1)) fail("predictive_quantiles", "each probability", "must lie in (0, 1)", p);
  arma::mat Q(probs.size(), X.n_cols);
  if (kind_ == ModelKind::bernoulli) {  // the q-quantile of Bern(p) is 1 exactly when q > 1 - p
    const arma::rowvec p = regression_function(X);
    for (std::size_t i = 0; i < X.n_cols; ++i)
      for (std::size_t q = 0; q < probs.size(); ++q) Q(q, i) = probs[q] > 1 - p[i] ? 1.0 : 0.0;
  } else if (kind_ == ModelKind::gaussian) {
    const arma::mat P = exp_entries(log_weights(X));
    const arma::mat H = expert_means(X);
    for (std::size_t i = 0; i < X.n_cols; ++i)
      for (std::size_t q = 0; q < probs.size(); ++q) Q(q, i) = mixture_quantile(P.col(i), H.col(i), nu_, probs[q]);
  } else {
    const arma::rowvec mean = regression_function(X);
    const double var = std::max(noise_variance_, 1e-300);
    for (std::size_t i = 0; i < X.n_cols; ++i)
      for (std::size_t q = 0; q < probs.size(); ++q)
        Q(q, i) = mixture_quantile(arma::vec{1.0}, arma::vec{mean[i]}, arma::vec{var}, probs[q]);
  }
  return Q;
}

arma::rowvec GaussianMoE::simulate(const arma::mat& X, Rng& rng) const {
  const std::size_t n = X.n_cols;
  arma::rowvec y(n);
  if (kind_ == ModelKind::regression) {
    const arma::rowvec f = regression_function(X);
    const double sd = std::sqrt(noise_variance_);
    for (std::size_t i = 0; i < n; ++i) y[i] = f[i] + sd * rng.normal();
    return y;
  }
  const arma::mat L = log_weights(X);
  const arma::mat H = expert_means(X);
  if (kind_ == ModelKind::bernoulli) {
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t j = rng.categorical_log(L.col(i));
      y[i] = std::log(rng.uniform()) < log_sigmoid(H(j, i)) ? 1.0 : 0.0;
    }
    return y;
  }
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t j = rng.categorical_log(L.col(i));
    y[i] = H(j, i) + std::sqrt(nu_[j]) * rng.normal();
  }
  return y;
}

arma::vec GaussianMoE::flat_params() const {
  const arma::vec g = gating_->params();
  const arma::vec e = arma::vectorise(eta_);
  if (kind_ != ModelKind::gaussian) return arma::join_cols(g, e);
  return arma::join_cols(g, e, arma::log(nu_));
}

void GaussianMoE::set_flat_params(const arma::vec& theta) {
  const std::size_t pg = gating_->n_params(), pe = eta_.n_elem;
  const std::size_t total = pg + pe + (kind_ == ModelKind::gaussian ? n_experts() : 0);
  if (theta.n_elem != total)
    fail("GaussianMoE::set_flat_params", "vector length", "must be " + std::to_string(total), theta.n_elem);
  gating_->set_params(theta.head(pg));
  eta_ = arma::reshape(theta.subvec(pg, pg + pe - 1), eta_.n_rows, eta_.n_cols);
  if (kind_ == ModelKind::gaussian) nu_ = arma::exp(theta.tail(n_experts()));
}

std::vector<std::string> GaussianMoE::flat_names() const {
  std::vector<std::string> names = gating_->param_names();
  const auto en = experts_->param_names();
  for (std::size_t j = 0; j < n_experts(); ++j)
    for (const auto& s : en) names.push_back("expert" + std::to_string(j + 1) + "." + s);
  if (kind_ == ModelKind::gaussian)
    for (std::size_t j = 0; j < n_experts(); ++j)
      names.push_back("expert" + std::to_string(j + 1) + ".log_variance");
  return names;
}

std::vector<Atom> GaussianMoE::atoms() const {
  std::vector<Atom> out(n_experts());
  for (std::size_t j = 0; j < n_experts(); ++j) {
    out[j].beta0 = gating_->atom_log_weight(j);
    out[j].location = gating_->atom_location(j);
    out[j].eta = eta_.col(j);
    out[j].nu = kind_ == ModelKind::gaussian ? nu_[j] : 0.0;
  }
  return out;
}

void GaussianMoE::permute(const std::vector<std::size_t>& order) {
  gating_->permute(order);
  arma::mat e(arma::size(eta_));
  arma::vec v(nu_.n_elem);
  for (std::size_t i = 0; i < order.size(); ++i) {
    e.col(i) = eta_.col(order[i]);
    if (!nu_.is_empty()) v[i] = nu_[order[i]];
  }
  eta_ = e;
  if (!nu_.is_empty()) nu_ = v;
}

json GaussianMoE::to_json() const {
  json j;
  j["model"] = model_kind_name(kind_);
  j["gating"] = gating_->family_json();
  j["expert_family"] = experts_->family_json();
  json ex = json::array();
  for (std::size_t i = 0; i < n_experts(); ++i) {
    json e;
    e["gate"] = gating_->gate_json(i);
    e["expert"] = experts_->to_json(eta_.col(i));
    if (kind_ == ModelKind::gaussian) e["variance"] = nu_[i];
    ex.push_back(e);
  }
  j["experts"] = ex;
  if (!covariates_.shared()) j["covariates"] = covariates_.to_json();
  const json extra = gating_->extra_json();
  if (!extra.empty()) j["gating_state"] = extra;
  if (kind_ == ModelKind::regression) j["noise_variance"] = noise_variance_;
  return j;
}

GaussianMoE GaussianMoE::from_json(const json& j, const std::string& source) {
  auto err = [&](const std::string& msg) { return InputError(source, 0, 0, msg); };
  try {
    if (!j.is_object()) throw err("a model file must be a JSON object");
    ModelKind kind = ModelKind::gaussian;
    if (j.contains("model")) {
      const std::string m = j["model"].is_string() ? j["model"].get<std::string>() : "";
      if (m == "gaussian") kind = ModelKind::gaussian;
      else if (m == "regression") kind = ModelKind::regression;
      else if (m == "bernoulli") kind = ModelKind::bernoulli;
      else throw err("\"model\" must be \"gaussian\", \"regression\" or \"bernoulli\"; got " + j["model"].dump());
    }
    for (const char* key : {"gating", "expert_family", "experts"})
      if (!j.contains(key)) throw err(std::string("missing required key \"") + key + "\"");
    const json& ex = j["experts"];
    if (!ex.is_array() || ex.empty()) throw err("\"experts\" must be a non-empty array");
    const std::size_t k = ex.size();
    // The dimension comes from the first expert's gate (beta1 or w) or expert a.
    std::size_t d = 0;
    const json& g0 = ex[0].contains("gate") ? ex[0]["gate"] : json();
    for (const char* key : {"beta1", "w"})
      if (g0.is_object() && g0.contains(key) && g0[key].is_array()) d = g0[key].size();
    if (d == 0 && ex[0].contains("expert") && ex[0]["expert"].contains("a") && ex[0]["expert"]["a"].is_array())
      d = ex[0]["expert"]["a"].size();
    if (d == 0) throw err("experts[0]: cannot tell the covariate dimension (no gate beta1/w array)");
    // Gate covariates: the gate reads d_g columns, the experts d_e (model/covariates.hpp).
    Covariates cov;
    if (j.contains("covariates") && !j["covariates"].is_null()) cov = Covariates::from_json(j["covariates"], "covariates");
    const std::size_t dg = cov.shared() ? d : cov.gate_rows().n_elem;
    const std::size_t de = cov.shared() ? d : cov.expert_rows().n_elem;
    if (!cov.shared() && d != dg && g0.is_object() && (g0.contains("beta1") || g0.contains("w")))
      throw err("experts[0].gate: has " + std::to_string(d) + " slopes but the gate reads " + std::to_string(dg) +
                " columns (" + cov.describe() + ")");
    auto gating = make_gating(j["gating"], k, dg);
    auto family = make_expert_family(j["expert_family"], de);
    if (kind != ModelKind::regression && gating->regression_only())
      throw err("gating '" + gating->family() + "' is only allowed in the regression model (\"model\": \"regression\")");
    if (j.contains("gating_state")) gating->set_extra_json(j["gating_state"], "gating_state");
    arma::mat eta(family->n_params(), k);
    arma::vec nu(k, arma::fill::ones);
    for (std::size_t i = 0; i < k; ++i) {
      const std::string where = "experts[" + std::to_string(i) + "]";
      const json& e = ex[i];
      if (!e.is_object()) throw err(where + ": expected an object");
      if (!e.contains("gate")) throw err(where + ": missing \"gate\"");
      if (!e.contains("expert")) throw err(where + ": missing \"expert\"");
      gating->set_gate_json(i, e["gate"], where + ".gate");
      eta.col(i) = family->from_json(e["expert"], where + ".expert");
      if (kind == ModelKind::gaussian) {
        if (!e.contains("variance")) throw err(where + ": missing \"variance\"");
        if (!e["variance"].is_number()) throw err(where + ".variance: expected a number; got " + e["variance"].dump());
        nu[i] = e["variance"].get<double>();
        if (!(nu[i] > 0) || !std::isfinite(nu[i]))
          throw err(where + ".variance: must be a finite variance > 0; got " + e["variance"].dump());
      }
    }
    gating->normalise();
    // Normalisation (e.g. subtracting the last expert's beta0) may overflow:
    // refuse the model here rather than write null or inf later.
    for (std::size_t i = 0; i < k; ++i) {
      try {
        check_json_finite(gating->gate_json(i), "experts[" + std::to_string(i) + "].gate");
      } catch (const InvalidArgument& e) {
        std::string w = e.what();
        w = w.substr(0, w.find(':'));
        throw err(w + ": the gate parameters are too large (normalising them overflows a double); "
                      "use values of moderate size, e.g. |beta0| < 1e300; got " + ex[i]["gate"].dump());
      }
    }
    if (!gating->params().is_finite())
      throw err("the gate parameters are too large (normalising them overflows a double)");
    GaussianMoE m(std::move(gating), std::move(family), eta, nu, kind, std::move(cov));
    if (kind == ModelKind::regression) {
      double nv = 0;
      if (j.contains("noise_variance")) {
        if (!j["noise_variance"].is_number()) throw err("\"noise_variance\" must be a number");
        nv = j["noise_variance"].get<double>();
      }
      m.set_noise_variance(nv);
    }
    return m;
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw err(e.what());
  }
}

GaussianMoE GaussianMoE::load(const std::string& path) { return from_json(read_json_file(path), path); }

}  // namespace moerate
