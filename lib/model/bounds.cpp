#include "moerate/model/bounds.hpp"

#include <algorithm>
#include <cmath>

#include "moerate/core/error.hpp"

namespace moerate {

namespace {

double slack(double bound) { return 1e-12 * std::max(1.0, std::abs(bound)); }

// The name after the last '.', e.g. "beta1_2" for "expert1.beta1_2".
std::string leaf(const std::string& name) {
  const auto dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

}  // namespace

bool Box::contains(const arma::vec& theta) const {
  if (empty()) return true;
  for (std::size_t i = 0; i < theta.n_elem; ++i)
    if (theta[i] < lower[i] - slack(lower[i]) || theta[i] > upper[i] + slack(upper[i])) return false;
  return true;
}

arma::vec Box::clamp(const arma::vec& theta) const {
  if (empty()) return theta;
  return arma::min(arma::max(theta, lower), upper);
}

double Box::max_step(const arma::vec& from, const arma::vec& to) const {
  if (empty()) return 1.0;
  double t = 1.0;
  for (std::size_t i = 0; i < from.n_elem; ++i) {
    const double d = to[i] - from[i];
    if (d > 0 && std::isfinite(upper[i])) t = std::min(t, std::max(0.0, (upper[i] - from[i]) / d));
    if (d < 0 && std::isfinite(lower[i])) t = std::min(t, std::max(0.0, (lower[i] - from[i]) / d));
  }
  return t;
}

std::vector<std::size_t> Box::active(const arma::vec& theta, double rel_tol) const {
  std::vector<std::size_t> out;
  if (empty()) return out;
  for (std::size_t i = 0; i < theta.n_elem; ++i) {
    const double tl = rel_tol * std::max(1.0, std::abs(lower[i])), tu = rel_tol * std::max(1.0, std::abs(upper[i]));
    if ((std::isfinite(lower[i]) && theta[i] <= lower[i] + tl) || (std::isfinite(upper[i]) && theta[i] >= upper[i] - tu))
      out.push_back(i);
  }
  return out;
}

bool ParameterBounds::any() const {
  return std::isfinite(gate_intercept) || std::isfinite(gate_slope) || std::isfinite(expert) || nu_min > 0 ||
         std::isfinite(nu_max);
}

void ParameterBounds::validate() const {
  auto positive = [](const char* name, double v) {
    if (std::isnan(v) || !(v > 0))
      throw InvalidArgument(std::string(name) + ": must be a positive number (or inf for no bound); got " + to_text(v));
  };
  positive("--bound-gate-intercept", gate_intercept);
  positive("--bound-gate-slope", gate_slope);
  positive("--bound-expert", expert);
  positive("--nu-max", nu_max);
  if (std::isnan(nu_min) || nu_min < 0 || !std::isfinite(nu_min))
    throw InvalidArgument("--nu-min: must be a finite number >= 0; got " + to_text(nu_min));
  if (nu_min > nu_max)
    throw InvalidArgument("--nu-min " + to_text(nu_min) + " exceeds --nu-max " + to_text(nu_max));
}

Box ParameterBounds::box(const GaussianMoE& model) const {
  Box b;
  if (!any()) return b;
  const arma::vec theta = model.flat_params();
  b.lower.set_size(theta.n_elem);
  b.upper.set_size(theta.n_elem);
  b.lower.fill(-arma::datum::inf);
  b.upper.fill(arma::datum::inf);
  const std::vector<std::string> gate_names = model.gating().param_names();
  const std::size_t pg = gate_names.size();
  for (std::size_t i = 0; i < pg; ++i) {
    const std::string l = leaf(gate_names[i]);
    double c = kNone;
    if (l == "beta0") c = gate_intercept;
    else if (l.rfind("beta1", 0) == 0 || l.rfind("w_", 0) == 0) c = gate_slope;
    b.lower[i] = -c;
    b.upper[i] = c;
  }
  const std::size_t pe = model.eta().n_elem;
  b.lower.subvec(pg, pg + pe - 1).fill(-expert);
  b.upper.subvec(pg, pg + pe - 1).fill(expert);
  if (model.kind() == ModelKind::gaussian) {
    const std::size_t k = model.n_experts();
    b.lower.tail(k).fill(nu_min > 0 ? std::log(nu_min) : -arma::datum::inf);
    b.upper.tail(k).fill(std::isfinite(nu_max) ? std::log(nu_max) : arma::datum::inf);
  }
  return b;
}

json ParameterBounds::to_json() const {
  json j = json::object();
  if (std::isfinite(gate_intercept)) j["gate_intercept"] = gate_intercept;
  if (std::isfinite(gate_slope)) j["gate_slope"] = gate_slope;
  if (std::isfinite(expert)) j["expert"] = expert;
  if (nu_min > 0) j["nu_min"] = nu_min;
  if (std::isfinite(nu_max)) j["nu_max"] = nu_max;
  return j;
}

ParameterBounds ParameterBounds::from_json(const json& j, const std::string& where) {
  if (!j.is_object()) throw InvalidArgument(where + ": expected an object of bounds; got " + j.dump());
  ParameterBounds b;
  for (const auto& [key, v] : j.items()) {
    if (!v.is_number())
      throw InvalidArgument(where + "." + key + ": expected a number; got " + v.dump());
    const double x = v.get<double>();
    if (key == "gate_intercept") b.gate_intercept = x;
    else if (key == "gate_slope") b.gate_slope = x;
    else if (key == "expert") b.expert = x;
    else if (key == "nu_min") b.nu_min = x;
    else if (key == "nu_max") b.nu_max = x;
    else
      throw InvalidArgument(where + "." + key + ": unknown bound (gate_intercept, gate_slope, expert, nu_min, nu_max)");
  }
  try {
    b.validate();
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(where + ": " + e.what());
  }
  return b;
}

}  // namespace moerate
