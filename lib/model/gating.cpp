#include "moerate/model/gating.hpp"

#include <lbfgs.h>

#include <sstream>

#include "moerate/core/error.hpp"
#include "moerate/core/numerics.hpp"

namespace moerate {

void GateMStepOptions::validate() const {
  if (!(ridge >= 0) || !std::isfinite(ridge)) fail("GateMStepOptions", "ridge", "must be >= 0", ridge);
  if (max_steps < 0) fail("GateMStepOptions", "max_steps", "must be >= 0 (0 = the family's default)", max_steps);
  if (!(tol >= 0)) fail("GateMStepOptions", "tol", "must be >= 0", tol);
  if (!(newton_tol >= 0)) fail("GateMStepOptions", "newton_tol", "must be >= 0", newton_tol);
  if (max_halvings < 1) fail("GateMStepOptions", "max_halvings", "must be >= 1", max_halvings);
}

double Gating::q_value(const arma::mat& X, const arma::mat& R, double ridge) const {
  const arma::mat L = log_weights(X);
  double q = 0;
  for (std::size_t i = 0; i < L.n_elem; ++i)
    if (R[i] != 0) q += R[i] * L[i];  // 0 * (-inf) counts as 0 (top-K, empty experts)
  if (ridge > 0) {
    const arma::vec t = params();
    q -= 0.5 * ridge * arma::dot(t, t);
  }
  return q;
}

namespace {

struct AscentContext {
  Gating* gate;
  const arma::mat* X;
  const arma::mat* R;
  double ridge;
};

lbfgsfloatval_t ascent_evaluate(void* instance, const lbfgsfloatval_t* x, lbfgsfloatval_t* g,
                                const int n, const lbfgsfloatval_t /*step*/) {
  auto* c = static_cast<AscentContext*>(instance);
  arma::vec theta(const_cast<double*>(x), n, /*copy_aux_mem=*/true);
  try {
    c->gate->set_params(theta);
  } catch (const InvalidArgument&) {
    for (int i = 0; i < n; ++i) g[i] = 0;
    return kInf;  // outside the parameter space: line search backs off
  }
  const double q = c->gate->q_value(*c->X, *c->R, c->ridge);
  arma::vec grad = c->gate->log_weights_vjp(*c->X, *c->R);
  if (c->ridge > 0) grad -= c->ridge * theta;
  for (int i = 0; i < n; ++i) g[i] = -grad[i];
  return std::isfinite(q) ? -q : kInf;
}

}  // namespace

GateMStepResult Gating::m_step(const arma::mat& X, const arma::mat& R,
                               const GateMStepOptions& opt) {
  GateMStepResult res;
  const arma::vec start = params();
  res.q_before = q_value(X, R, opt.ridge);
  res.q_after = res.q_before;
  const int n = static_cast<int>(start.n_elem);
  if (n == 0) return res;

  lbfgs_parameter_t p;
  lbfgs_parameter_init(&p);
  p.max_iterations = opt.steps_or(20);
  p.epsilon = 1e-10;
  p.delta = opt.tol;
  p.past = 1;
  p.max_linesearch = opt.max_halvings;
  p.linesearch = LBFGS_LINESEARCH_BACKTRACKING_ARMIJO;
  lbfgsfloatval_t* x = lbfgs_malloc(n);
  for (int i = 0; i < n; ++i) x[i] = start[i];
  lbfgsfloatval_t fx = 0;
  AscentContext ctx{this, &X, &R, opt.ridge};
  const int ret = lbfgs(n, x, &fx, ascent_evaluate, nullptr, &ctx, &p);
  (void)ret;
  arma::vec theta(x, n, true);
  lbfgs_free(x);
  bool ok = true;
  try {
    set_params(theta);
  } catch (const InvalidArgument&) {
    ok = false;
  }
  const double q_new = ok ? q_value(X, R, opt.ridge) : -kInf;
  if (ok && std::isfinite(q_new) && q_new >= res.q_before) {
    res.q_after = q_new;
    res.steps = 1;
  } else {
    set_params(start);  // never accept a step that lowers Q
  }
  return res;
}

std::vector<arma::mat> Gating::log_weight_gradients_obs(const arma::mat& X) const {
  std::vector<arma::mat> out;
  for (std::size_t j = 0; j < k_; ++j) {
    arma::mat C(k_, X.n_cols, arma::fill::zeros);
    C.row(j).ones();
    out.push_back(log_weights_vjp_obs(X, C));
  }
  return out;
}

arma::mat Gating::log_weights_vjp_obs(const arma::mat& X, const arma::mat& C) const {
  const arma::vec theta = params();
  arma::mat out(theta.n_elem, X.n_cols, arma::fill::zeros);
  std::unique_ptr<Gating> g = clone();
  for (std::size_t u = 0; u < theta.n_elem; ++u) {
    const double h = 1e-6 * std::max(1.0, std::abs(theta[u]));
    arma::vec tp = theta, tm = theta;
    tp[u] += h;
    tm[u] -= h;
    g->set_params(tp);
    const arma::mat Lp = g->log_weights(X);
    g->set_params(tm);
    const arma::mat Lm = g->log_weights(X);
    arma::mat D = (Lp - Lm) / (2 * h);
    D.elem(arma::find_nonfinite(D)).zeros();  // weights that are exactly 0 on both sides
    out.row(u) = arma::sum(C % D, 0);
  }
  return out;
}

void Gating::translate(double, const arma::vec&) {
  throw InvalidArgument(family() + ": translate: the gate is not translation invariant");
}

void Gating::init_from_responsibilities(const arma::mat& X, const arma::mat& R) {
  set_params(arma::zeros<arma::vec>(n_params()));
  GateMStepOptions opt;
  opt.max_steps = 50;
  opt.ridge = 1e-6;
  m_step(X, R, opt);
}

void check_order(const std::vector<std::size_t>& order, std::size_t k, const std::string& fn) {
  if (order.size() != k) fail(fn, "order length", "must be " + std::to_string(k), order.size());
  std::vector<bool> seen(k, false);
  for (auto o : order) {
    if (o >= k || seen[o]) throw InvalidArgument(fn + ": order must be a permutation of 0.." + std::to_string(k - 1));
    seen[o] = true;
  }
}

std::map<std::string, GatingInfo>& gating_registry() {
  static std::map<std::string, GatingInfo> r;
  return r;
}

bool register_gating(const std::string& name, const std::string& description, GatingFactory f) {
  gating_registry()[name] = GatingInfo{name, description, std::move(f)};
  return true;
}

static std::string known_names(const std::map<std::string, GatingInfo>& r) {
  std::string s;
  for (const auto& [k, v] : r) s += (s.empty() ? "" : ", ") + k;
  return s;
}

std::unique_ptr<Gating> make_gating(const json& spec, std::size_t k, std::size_t d) {
  if (!spec.is_object() || !spec.contains("family") || !spec["family"].is_string())
    throw InvalidArgument("gating: expected an object with a string \"family\"; got " + spec.dump());
  const std::string name = spec["family"];
  auto& reg = gating_registry();
  auto it = reg.find(name);
  if (it == reg.end())
    throw InvalidArgument("gating: unknown family '" + name + "'; known: " + known_names(reg));
  if (k < 1) fail("gating", "number of experts", "must be >= 1", k);
  if (d < 1) fail("gating", "dimension", "must be >= 1", d);
  return it->second.make(spec, k, d);
}

json parse_family_spec(const std::string& text) {
  json j = json::object();
  const auto colon = text.find(':');
  j["family"] = text.substr(0, colon);
  if (j["family"].get<std::string>().empty())
    throw InvalidArgument("family spec: empty name in '" + text + "'");
  if (colon == std::string::npos) return j;
  std::stringstream rest(text.substr(colon + 1));
  std::string item;
  bool first_bare = true;
  while (std::getline(rest, item, ',')) {
    if (item.empty()) continue;
    const auto eq = item.find('=');
    std::string key, val;
    if (eq == std::string::npos) {
      // "ffn:tanh" -> the first bare value is the family's main option ("activation").
      if (!first_bare)
        throw InvalidArgument("family spec: expected key=value, got '" + item + "' in '" + text + "'");
      key = "_";
      val = item;
      first_bare = false;
    } else {
      key = item.substr(0, eq);
      val = item.substr(eq + 1);
    }
    char* end = nullptr;
    const double num = std::strtod(val.c_str(), &end);
    if (!val.empty() && end && *end == '\0')
      j[key] = num;
    else
      j[key] = val;
  }
  return j;
}

}  // namespace moerate
