#include "moerate/gating/temperature_gating.hpp"

#include "moerate/core/error.hpp"
#include "moerate/core/json_fields.hpp"
#include "moerate/gating/softmax_gating.hpp"

namespace moerate {

TemperatureGating::TemperatureGating(std::size_t k, std::size_t d, std::optional<Activation> act, double tau,
                                     bool estimate_tau, Norm norm)
    : Gating(k, d), act_(act), tau_(tau), estimate_(estimate_tau), norm_(norm),
      beta0_(k, arma::fill::zeros), beta1_(d, k, arma::fill::zeros) {
  check_positive(family(), "tau", tau);
  if (act_ && *act_ == Activation::relu)
    throw InvalidArgument("activated-temperature: act must be sigmoid, tanh or gelu; got relu");
  build_slots();
  apply_fixed();
}

void TemperatureGating::build_slots() {
  slots_.clear();
  if (k_ < 2) return;  // one expert: the gate is constant, nothing to estimate
  if (estimate_) slots_.push_back({Slot::log_tau, 0, 0});
  const std::size_t free_experts = act_ ? k_ : k_ - 1;
  for (std::size_t i = 0; i < free_experts; ++i) {
    if (i + 1 < k_) slots_.push_back({Slot::beta0, i, 0});
    for (std::size_t u = 0; u < d_; ++u) {
      if (!act_ && estimate_ && norm_ == Norm::beta1 && i == 0 && u == 0) continue;
      slots_.push_back({Slot::beta1, i, u});
    }
  }
}

void TemperatureGating::apply_fixed() {
  beta0_[k_ - 1] = 0;
  if (!act_) beta1_.col(k_ - 1).zeros();
  if (!act_ && estimate_ && norm_ == Norm::beta1 && k_ >= 2) beta1_(0, 0) = sign_;
}

json TemperatureGating::family_json() const {
  json j{{"family", family()}};
  if (act_) j["act"] = activation_name(*act_);
  if (estimate_) {
    j["tau"] = "estimate";
    if (!act_) j["norm"] = norm_ == Norm::beta1 ? "beta1" : "none";
  } else {
    j["tau"] = tau_;
  }
  return j;
}

std::string TemperatureGating::description() const {
  return act_ ? "activated temperature gate Softmax((phi(beta1^T x) + beta0)/tau)"
              : "temperature gate Softmax((beta1^T x + beta0)/tau)";
}

arma::mat TemperatureGating::scores(const arma::mat& X, arma::mat* Zout) const {
  arma::mat Z = beta1_.t() * X;  // k x n
  arma::mat S = act_ ? activate(*act_, Z) : Z;
  S.each_col() += beta0_;
  S /= tau_;
  if (Zout) *Zout = std::move(Z);
  return S;
}

arma::mat TemperatureGating::log_weights(const arma::mat& X) const {
  arma::mat S = scores(X);
  normalise_log_cols(S);
  return S;
}

arma::vec TemperatureGating::log_weights_vjp(const arma::mat& X, const arma::mat& C) const {
  arma::mat Z;
  const arma::mat S = scores(X, &Z);
  arma::mat L = S;
  normalise_log_cols(L);
  const arma::rowvec s = arma::sum(C, 0);
  arma::mat P = exp_entries(std::move(L));
  const arma::mat D = C - P.each_row() % s;  // d/dS of sum C log pi
  const arma::vec g0 = arma::sum(D, 1) / tau_;
  const arma::mat Dz = act_ ? arma::mat(D % activate_d1(*act_, Z)) : D;
  const arma::mat g1 = X * Dz.t() / tau_;              // d x k
  const double glt = -arma::accu(D % S);               // d/d log tau
  arma::vec g(slots_.size());
  for (std::size_t p = 0; p < slots_.size(); ++p) {
    const Slot& sl = slots_[p];
    g[p] = sl.kind == Slot::log_tau ? glt : sl.kind == Slot::beta0 ? g0[sl.expert] : g1(sl.coord, sl.expert);
  }
  return g;
}

arma::vec TemperatureGating::params() const {
  arma::vec t(slots_.size());
  for (std::size_t p = 0; p < slots_.size(); ++p) {
    const Slot& sl = slots_[p];
    t[p] = sl.kind == Slot::log_tau ? std::log(tau_)
           : sl.kind == Slot::beta0 ? beta0_[sl.expert]
                                    : beta1_(sl.coord, sl.expert);
  }
  return t;
}

void TemperatureGating::set_params(const arma::vec& theta) {
  const std::string fn = family() + ": set_params";
  if (theta.n_elem != slots_.size())
    fail(fn, "parameter vector length", "must be " + std::to_string(slots_.size()), theta.n_elem);
  if (!theta.is_finite()) throw InvalidArgument(fn + ": parameters must be finite");
  for (std::size_t p = 0; p < slots_.size(); ++p)
    if (slots_[p].kind == Slot::log_tau && !(std::isfinite(std::exp(theta[p])) && std::exp(theta[p]) > 0))
      fail(fn, "log tau", "must give a finite tau > 0", theta[p]);
  for (std::size_t p = 0; p < slots_.size(); ++p) {
    const Slot& sl = slots_[p];
    if (sl.kind == Slot::log_tau) tau_ = std::exp(theta[p]);
    else if (sl.kind == Slot::beta0) beta0_[sl.expert] = theta[p];
    else beta1_(sl.coord, sl.expert) = theta[p];
  }
  apply_fixed();
}

std::vector<std::string> TemperatureGating::param_names() const {
  std::vector<std::string> names;
  for (const Slot& sl : slots_) {
    const std::string e = "expert" + std::to_string(sl.expert + 1) + ".";
    if (sl.kind == Slot::log_tau) names.push_back("log_tau");
    else if (sl.kind == Slot::beta0) names.push_back(e + "beta0");
    else names.push_back(e + "beta1_" + std::to_string(sl.coord + 1));
  }
  return names;
}

bool TemperatureGating::newton_applicable(const GateMStepOptions& opt) const {
  if (act_ || k_ < 2) return false;
  if (!estimate_) return true;
  return norm_ == Norm::beta1 && opt.ridge == 0;
}

GateMStepResult TemperatureGating::m_step(const arma::mat& X, const arma::mat& R, const GateMStepOptions& opt) {
  if (!newton_applicable(opt)) return Gating::m_step(X, R, opt);
  // The equivalent softmax gate gamma = beta / tau: Newton there, mapped back exactly.
  // Fixed tau: ridge/2 |beta|^2 = (ridge tau^2)/2 |gamma|^2.
  const double q0 = q_value(X, R, opt.ridge);
  const double tau0 = tau_;
  const arma::vec b0 = beta0_;
  const arma::mat b1 = beta1_;
  SoftmaxGating sg(k_, d_);
  arma::vec gamma(sg.n_params());
  for (std::size_t i = 0; i + 1 < k_; ++i) {
    gamma[i * (d_ + 1)] = beta0_[i] / tau_;
    gamma.subvec(i * (d_ + 1) + 1, i * (d_ + 1) + d_) = beta1_.col(i) / tau_;
  }
  sg.set_params(gamma);
  GateMStepOptions so = opt;
  so.ridge = estimate_ ? 0.0 : opt.ridge * tau_ * tau_;
  sg.m_step(X, R, so);
  double scale = tau_;  // beta = gamma * scale
  bool ok = true;
  if (estimate_) {
    const double c = sg.beta1()(0, 0);
    ok = std::isfinite(c) && c != 0 && (c > 0) == (sign_ > 0);
    scale = ok ? 1.0 / std::abs(c) : tau_;
    if (ok) tau_ = scale;
  }
  if (ok) {
    beta0_ = sg.beta0() * scale;
    beta1_ = sg.beta1() * scale;
    apply_fixed();
  }
  const double q1 = q_value(X, R, opt.ridge);
  if (!ok || !std::isfinite(q1) || q1 < q0) {
    tau_ = tau0;
    beta0_ = b0;
    beta1_ = b1;
    return Gating::m_step(X, R, opt);  // the sign would flip (or round-off): plain ascent
  }
  return GateMStepResult{q0, q1, 1};
}

void TemperatureGating::init_from_responsibilities(const arma::mat& X, const arma::mat& R) {
  if (act_ || k_ < 2) {
    Gating::init_from_responsibilities(X, R);
    return;
  }
  SoftmaxGating dense(k_, d_);
  dense.init_from_responsibilities(X, R);
  double scale = tau_;
  if (estimate_) {
    if (norm_ == Norm::beta1) {
      const double c = dense.beta1()(0, 0);
      sign_ = c < 0 ? -1.0 : 1.0;
      scale = 1.0 / std::max(std::abs(c), 1e-8);
    } else {
      scale = 1.0;
    }
    tau_ = scale;
  }
  beta0_ = dense.beta0() * scale;
  beta1_ = dense.beta1() * scale;
  apply_fixed();
}

json TemperatureGating::gate_json(std::size_t i) const {
  return json{{"beta0", beta0_[i]}, {"beta1", arma::conv_to<std::vector<double>>::from(beta1_.col(i))}};
}

void TemperatureGating::set_gate_json(std::size_t i, const json& gate, const std::string& where) {
  if (i >= k_) fail(family() + ": set_gate_json", "expert index", "must be < " + std::to_string(k_), i);
  const double b0 = json_number(gate, "beta0", where);
  const arma::vec b1 = json_vector(gate, "beta1", d_, where);
  beta0_[i] = b0;
  beta1_.col(i) = b1;
}

json TemperatureGating::extra_json() const {
  if (!estimate_) return json::object();
  return json{{"tau", tau_}};
}

void TemperatureGating::set_extra_json(const json& j, const std::string& where) {
  if (!j.is_object()) throw InvalidArgument(where + ": expected an object; got " + j.dump());
  for (const auto& [key, v] : j.items())
    if (key != "tau") throw InvalidArgument(where + ": unknown key \"" + key + "\" (" + family() + " stores only \"tau\")");
  if (!j.contains("tau")) return;
  if (!estimate_)
    throw InvalidArgument(where + ".tau: tau is fixed by the gating spec (tau=" + to_text(tau_) +
                          "); use tau=estimate to read an estimated tau");
  const double t = json_number(j, "tau", where);
  if (!(t > 0)) throw InvalidArgument(where + ".tau: must be > 0; got " + j["tau"].dump());
  tau_ = t;
}

void TemperatureGating::normalise() {
  beta0_ -= beta0_[k_ - 1];
  if (act_) return;
  const arma::vec r1 = beta1_.col(k_ - 1);
  beta1_.each_col() -= r1;
  if (estimate_ && norm_ == Norm::beta1 && k_ >= 2) {
    const double c = beta1_(0, 0);
    if (!(c != 0) || !std::isfinite(c))
      throw InvalidArgument("temperature (norm=beta1): beta1[0] of expert 1 minus that of the reference "
                            "must be nonzero to fix the scale; got " + to_text(c));
    const double a = std::abs(c);
    beta0_ /= a;
    beta1_ /= a;
    tau_ /= a;
    sign_ = c > 0 ? 1.0 : -1.0;
    apply_fixed();
  }
}

void TemperatureGating::permute(const std::vector<std::size_t>& order) {
  check_order(order, k_, family() + ": permute");
  arma::vec b0(k_);
  arma::mat b1(d_, k_);
  for (std::size_t i = 0; i < k_; ++i) {
    b0[i] = beta0_[order[i]];
    b1.col(i) = beta1_.col(order[i]);
  }
  beta0_ = std::move(b0);
  beta1_ = std::move(b1);
  normalise();
}

void TemperatureGating::translate(double t0, const arma::vec& t1) {
  if (act_) {
    if (t1.n_elem != 0 && arma::any(t1 != 0))
      throw InvalidArgument("activated-temperature: translate: beta1 has no translation invariance; only t0 is allowed");
  } else {
    if (t1.n_elem != d_) fail("temperature: translate", "t1 length", "must be " + std::to_string(d_), t1.n_elem);
    beta1_.each_col() += t1 * tau_;
  }
  beta0_ += t0 * tau_;
}

arma::vec TemperatureGating::atom_location(std::size_t i) const {
  return act_ ? arma::vec(beta1_.col(i)) : arma::vec(beta1_.col(i) / tau_);
}

namespace {

std::unique_ptr<Gating> make_temperature(const json& spec, std::size_t k, std::size_t d, bool activated) {
  const std::string name = activated ? "activated-temperature" : "temperature";
  double tau = 1.0;  // default: fixed tau = 1 (= softmax for the linear router)
  bool estimate = false;
  std::optional<TemperatureGating::Norm> norm;
  std::optional<Activation> act;
  for (const auto& [key, v] : spec.items()) {
    if (key == "family") continue;
    if (key == "tau") {
      if (v.is_string() && v.get<std::string>() == "estimate") estimate = true;
      else if (v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() > 0) tau = v.get<double>();
      else throw InvalidArgument("gating " + name + ": tau must be a number > 0 or \"estimate\"; got " + v.dump());
    } else if (key == "norm" && !activated) {
      const std::string s = v.is_string() ? v.get<std::string>() : v.dump();
      if (s == "beta1") norm = TemperatureGating::Norm::beta1;
      else if (s == "none") norm = TemperatureGating::Norm::none;
      else throw InvalidArgument("gating temperature: norm must be beta1 or none; got " + v.dump());
    } else if ((key == "act" || key == "_") && activated) {
      if (!v.is_string()) throw InvalidArgument("gating " + name + ": act must be sigmoid, tanh or gelu; got " + v.dump());
      act = parse_activation(v.get<std::string>());
    } else {
      throw InvalidArgument("gating " + name + ": unknown option '" + key + "' (options: " +
                            (activated ? "act, tau" : "tau, norm") + ")");
    }
  }
  if (activated && !act)
    throw InvalidArgument("gating activated-temperature: the option act is required (sigmoid, tanh or gelu), "
                          "e.g. activated-temperature:act=tanh,tau=0.5");
  if (!activated && estimate && !norm)
    throw InvalidArgument("gating temperature: tau=estimate needs a normalisation: norm=beta1 (fix beta1 of "
                          "expert 1 to +-1) or norm=none (tau not identified); see docs/gating-families.md");
  if (!estimate && norm)
    throw InvalidArgument("gating temperature: norm applies only with tau=estimate");
  return std::make_unique<TemperatureGating>(k, d, act, tau, estimate,
                                             norm.value_or(TemperatureGating::Norm::none));
}

}  // namespace

MOERATE_REGISTER_GATING("temperature",
                        "temperature gate Softmax((beta1^T x + beta0)/tau); tau=VALUE or tau=estimate,norm=beta1|none",
                        [](const json& spec, std::size_t k, std::size_t d) {
                          return make_temperature(spec, k, d, false);
                        });
MOERATE_REGISTER_GATING("activated-temperature",
                        "activated temperature gate Softmax((phi(beta1^T x) + beta0)/tau); act=sigmoid|tanh|gelu, "
                        "tau=VALUE|estimate",
                        [](const json& spec, std::size_t k, std::size_t d) {
                          return make_temperature(spec, k, d, true);
                        });

}  // namespace moerate
