#include "moerate/metrics/identifiability.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "moerate/io/csv.hpp"
#include "moerate/model/design.hpp"
#include "moerate/core/error.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/core/rng.hpp"

namespace moerate {

std::string ident_version_name(IdentVersion v) {
  switch (v) {
    case IdentVersion::gaussian: return "gaussian";
    case IdentVersion::lse: return "lse";
    case IdentVersion::gate_expert: return "gate-expert";
    case IdentVersion::gate: return "gate";
    case IdentVersion::density: return "density";
  }
  return "?";
}

IdentVersion parse_ident_version(const std::string& s) {
  if (s == "gaussian") return IdentVersion::gaussian;
  if (s == "lse") return IdentVersion::lse;
  if (s == "gate-expert") return IdentVersion::gate_expert;
  if (s == "gate") return IdentVersion::gate;
  if (s == "density") return IdentVersion::density;
  throw InvalidArgument("identify: version must be gaussian, lse, density, gate-expert or gate; got '" + s + "'");
}

void IdentOptions::validate() const {
  const std::string fn = "IdentOptions";
  if (!(rel_threshold > 0 && rel_threshold < 1)) fail(fn, "rel_threshold", "must be in (0, 1)", rel_threshold);
  if (!(zero_threshold > 0 && zero_threshold < 1)) fail(fn, "zero_threshold", "must be in (0, 1)", zero_threshold);
  if (!(coef_drop > 0 && coef_drop < 1)) fail(fn, "coef_drop", "must be in (0, 1)", coef_drop);
}

std::string FunctionSet::full_name(std::size_t c) const {
  if (expert[c] < 0) return base_names[c];
  return base_names[c] + "[" + std::to_string(expert[c] + 1) + "]";
}

double Relation::coef_of(const std::string& full_name) const {
  for (const auto& t : terms)
    if (t.name == full_name) return t.coef;
  return 0;
}

// ---------------------------------------------------------------------------
// Setups

namespace {

bool positive_only_name(const std::string& n) {
  return n.find("tau") != std::string::npos || n.find("temperature") != std::string::npos;
}

void randomise_gating(Gating& g, Rng& rng) {
  const arma::vec theta0 = g.params();
  const auto names = g.param_names();
  for (int attempt = 0; attempt < 50; ++attempt) {
    arma::vec t = theta0;
    for (std::size_t p = 0; p < t.n_elem; ++p) {
      const bool pos = p < names.size() && positive_only_name(names[p]);
      t[p] = pos ? (theta0[p] > 0 ? theta0[p] : 1.0) * std::exp(0.3 * rng.normal()) : theta0[p] + 0.8 * rng.normal();
    }
    try {
      g.set_params(t);
      return;
    } catch (const std::exception&) {
    }
  }
  g.set_params(theta0);
}

}  // namespace

IdentSetup random_setup(const json& expert_spec, const json& gating_spec, std::size_t d, std::size_t k,
                        std::uint64_t seed) {
  if (d < 1) fail("random_setup", "dimension", "must be >= 1", d);
  if (k < 1) fail("random_setup", "number of experts", "must be >= 1", k);
  IdentSetup s;
  s.experts = make_expert_family(expert_spec, d);
  Rng rng(derive_seed(seed, {0}));
  const std::size_t q = s.experts->n_params();
  s.eta.set_size(q, k);
  for (std::size_t j = 0; j < k; ++j) {
    for (int attempt = 0;; ++attempt) {
      // Entries +-U(0.5, 1.5): away from 0, where families degenerate (a = 0: a constant expert).
      arma::vec e(q);
      for (auto& v : e) v = (rng.uniform() < 0.5 ? -1.0 : 1.0) * rng.uniform(0.5, 1.5);
      try {
        s.experts->validate(e, "random expert");
        s.eta.col(j) = e;
        break;
      } catch (const std::exception&) {
        if (attempt > 100) throw;
      }
    }
  }
  s.nu.set_size(k);
  for (auto& v : s.nu) v = rng.uniform(0.3, 1.0);
  s.location.set_size(d, k);
  for (auto& v : s.location) v = 0.5 * rng.normal();
  if (!gating_spec.is_null()) {
    s.gating = make_gating(gating_spec, k, d);
    randomise_gating(*s.gating, rng);
  }
  s.source = "random parameters (seed " + std::to_string(seed) + ")";
  return s;
}

IdentSetup setup_from_model(const GaussianMoE& m, const std::string& source) {
  if (!m.covariates().shared())
    throw InvalidArgument("identify: " + source + " has gate covariates (" + m.covariates().describe() +
                          "); the identifiability check needs gate and experts on the same covariates");
  IdentSetup s;
  s.experts = m.expert_family_ptr();
  s.gating = m.gating().clone();
  s.eta = m.eta();
  const std::size_t k = m.n_experts();
  s.nu = m.kind() == ModelKind::gaussian ? m.nu() : arma::vec(k, arma::fill::ones);
  s.location.set_size(m.dim(), k);
  for (std::size_t j = 0; j < k; ++j) {
    const arma::vec loc = m.gating().atom_location(j);
    s.location.col(j) = loc.n_elem == m.dim() ? loc : arma::vec(m.dim(), arma::fill::zeros);
  }
  s.source = source;
  return s;
}

// ---------------------------------------------------------------------------
// Second derivatives

arma::mat richardson_hessian(const ExpertFamily& f, const arma::mat& X, const arma::vec& eta) {
  const std::size_t q = f.n_params(), n = X.n_cols;
  arma::mat H(q * q, n);
  for (std::size_t v = 0; v < q; ++v) {
    const double h = 1e-3 * std::max(1.0, std::abs(eta[v]));
    auto central = [&](double step) {
      arma::vec ep = eta, em = eta;
      ep[v] += step;
      em[v] -= step;
      arma::mat D = (f.jacobian(X, ep) - f.jacobian(X, em)) / (2 * step);
      return D;
    };
    const arma::mat d1 = central(h), d2 = central(h / 2);
    const arma::mat d = (4 * d2 - d1) / 3;  // error O(h^4)
    for (std::size_t u = 0; u < q; ++u) H.row(u * q + v) = d.row(u);
  }
  // Symmetrise (the exact Hessian is symmetric).
  for (std::size_t u = 0; u < q; ++u)
    for (std::size_t v = u + 1; v < q; ++v) {
      const arma::rowvec m = 0.5 * (H.row(u * q + v) + H.row(v * q + u));
      H.row(u * q + v) = m;
      H.row(v * q + u) = m;
    }
  return H;
}

arma::mat checked_hessian(const ExpertFamily& f, const arma::mat& X, const arma::vec& eta, std::string* source,
                          double* accuracy, bool* analytic) {
  const arma::mat Hr = richardson_hessian(f, X, eta);
  const arma::mat Hf = f.hessian(X, eta);
  // A family that does not override hessian() gets the base class's central
  // differences (~1e-7..1e-10): the Richardson values are more accurate then.
  const arma::mat Hb = f.ExpertFamily::hessian(X, eta);
  const bool overridden = !(Hf.n_rows == Hb.n_rows && Hf.n_cols == Hb.n_cols && arma::approx_equal(Hf, Hb, "absdiff", 0.0)) ||
                          (!Hf.is_empty() && arma::abs(Hf).max() == 0.0);
  const double scale = std::max(1.0, Hr.is_empty() ? 0.0 : arma::abs(Hr).max());
  const double diff = Hr.is_empty() || Hf.n_rows != Hr.n_rows || Hf.n_cols != Hr.n_cols ? kInf : arma::abs(Hf - Hr).max() / scale;
  if (analytic) *analytic = overridden && Hf.is_finite() && diff <= 1e-8;
  if (overridden && Hf.is_finite() && diff <= 1e-8) {
    if (source) {
      std::ostringstream s;
      s.precision(2);
      s << "first derivatives analytic (jacobian); second derivatives from the family's hessian(), which agrees "
           "with Richardson-extrapolated differences of the analytic Jacobian to "
        << std::scientific << diff << " relative";
      *source = s.str();
    }
    if (accuracy) *accuracy = std::max(diff, 1e-15);
    return Hf;
  }
  if (source) {
    std::ostringstream s;
    s.precision(2);
    s << "first derivatives analytic (jacobian); second derivatives numerical: Richardson-extrapolated central "
         "differences of the analytic Jacobian (~1e-10 relative; "
      << (overridden ? "the family's hessian() differs by " : "the family has no analytic hessian(); its default differs by ")
      << std::scientific << diff << ")";
    *source = s.str();
  }
  if (accuracy) *accuracy = 1e-10;
  return Hr;
}

// ---------------------------------------------------------------------------
// Function sets

namespace {

std::string xname(std::size_t w) { return "x_" + std::to_string(w + 1); }

std::string d2name(const std::string& f, const std::string& a, const std::string& b) {
  if (a == b) return "d2" + f + "/d" + a + "2";
  return "d2" + f + "/(d" + a + " d" + b + ")";
}

std::vector<std::size_t> free_indices(const ExpertFamily& f, const std::vector<std::string>& free_blocks) {
  std::vector<std::size_t> idx;
  if (free_blocks.empty()) {
    for (std::size_t u = 0; u < f.n_params(); ++u) idx.push_back(u);
    return idx;
  }
  const auto blocks = f.blocks();
  for (const auto& name : free_blocks) {
    bool found = false;
    for (const auto& b : blocks)
      if (b.name == name) {
        for (std::size_t u = 0; u < b.size; ++u) idx.push_back(b.offset + u);
        found = true;
      }
    if (!found) {
      std::string known;
      for (const auto& b : blocks) known += (known.empty() ? "" : ", ") + b.name;
      throw InvalidArgument("identify: expert family " + f.family() + " has no parameter block '" + name +
                            "' (blocks: " + known + ")");
    }
  }
  std::sort(idx.begin(), idx.end());
  idx.erase(std::unique(idx.begin(), idx.end()), idx.end());
  return idx;
}

struct Builder {
  FunctionSet& fs;
  std::vector<arma::vec> cols;
  void add(const arma::rowvec& v, const std::string& name, int j) {
    cols.push_back(v.t());
    fs.base_names.push_back(name);
    fs.expert.push_back(j);
  }
  void finish(std::size_t n) {
    fs.F.set_size(n, cols.size());
    for (std::size_t c = 0; c < cols.size(); ++c) fs.F.col(c) = cols[c];
  }
};

}  // namespace

FunctionSet function_set(const IdentSetup& s, IdentVersion v, const arma::mat& X, const arma::rowvec& y,
                         const IdentOptions& opt) {
  const ExpertFamily& f = *s.experts;
  const std::size_t d = f.dim(), q = f.n_params(), k = s.n_experts(), n = X.n_cols;
  if (X.n_rows != d) fail("identify", "dimension of x", "must be " + std::to_string(d), X.n_rows);
  FunctionSet fs;
  fs.version = v;
  Builder b{fs, {}};
  const auto pn = f.param_names();
  const auto fr = free_indices(f, opt.free_blocks);

  if (v == IdentVersion::gate) {
    if (!s.gating) throw InvalidArgument("identify: the gate version needs a gating family");
    const Gating& g = *s.gating;
    const auto names = g.param_names();
    const std::size_t p = g.n_params();
    if (p == 0) throw InvalidArgument("identify: gating " + g.family() + " has no free parameters");
    arma::mat F(n * k, p);
    arma::uvec ok(n * k, arma::fill::ones);
    for (std::size_t i = 0; i < n; ++i) {
      const arma::mat xi = X.col(i);
      for (std::size_t j = 0; j < k; ++j) {
        arma::mat C(k, 1, arma::fill::zeros);
        C(j, 0) = 1;
        const arma::vec gr = g.log_weights_vjp(xi, C);
        F.row(i * k + j) = gr.t();
        if (!gr.is_finite()) ok[i * k + j] = 0;
      }
    }
    fs.F = F.rows(arma::find(ok));
    for (std::size_t c = 0; c < p; ++c) {
      fs.base_names.push_back("dlogpi/d(" + (c < names.size() ? names[c] : std::to_string(c)) + ")");
      fs.expert.push_back(-1);
    }
    fs.derivatives = "analytic (Gating::log_weights_vjp with one-hot weights; rows are (x_i, expert j))";
    fs.derivative_accuracy = 0;
    return fs;
  }

  std::string hess_source;
  double hess_acc = 0;
  std::vector<arma::vec> fs_lift_cols;  // gaussian version: density-level counterparts, column by column
  for (std::size_t j = 0; j < k; ++j) {
    const int jj = static_cast<int>(j);
    const arma::vec eta = s.eta.col(j);
    const arma::mat J = f.jacobian(X, eta);
    std::string src;
    double acc = 0;
    bool an = true;
    const arma::mat H = checked_hessian(f, X, eta, &src, &acc, &an);
    if (acc >= hess_acc) hess_acc = acc, hess_source = src;
    fs.analytic = fs.analytic && an;
    auto Hrow = [&](std::size_t u, std::size_t w) -> arma::rowvec { return H.row(u * q + w); };

    if (v == IdentVersion::gaussian || v == IdentVersion::lse) {
      // Density-level counterparts (gaussian version, y given): u = exp(beta1^T x) N(y; h, nu),
      // dh/deta_u -> du/deta_u, d2h/(deta_u deta_v) -> d2u/(deta_u deta_v), x_w dh/deta_u -> d2u/(dbeta1_w deta_u).
      const bool lift = v == IdentVersion::gaussian && y.n_elem == n;
      arma::rowvec Em, Ema;  // E N' and E N'' (derivatives of N in its mean)
      if (lift) {
        const double nu = s.nu[j];
        const arma::rowvec h = f.mean(X, eta), r = y - h;
        const arma::rowvec E = arma::exp(s.location.col(j).t() * X);
        const arma::rowvec N = arma::exp(log_normal_pdf(y, h, nu));
        Em = E % N % r / nu;
        Ema = E % N % (r % r / (nu * nu) - 1.0 / nu);
      }
      auto lifted = [&](const arma::rowvec& col) {
        if (lift) fs_lift_cols.push_back(col.t());
      };
      for (auto u : fr) b.add(J.row(u), "dh/d" + pn[u], jj), lifted(lift ? arma::rowvec(Em % J.row(u)) : arma::rowvec());
      for (std::size_t a = 0; a < fr.size(); ++a)
        for (std::size_t c = a; c < fr.size(); ++c) {
          b.add(Hrow(fr[a], fr[c]), d2name("h", pn[fr[a]], pn[fr[c]]), jj);
          lifted(lift ? arma::rowvec(Ema % J.row(fr[a]) % J.row(fr[c]) + Em % Hrow(fr[a], fr[c])) : arma::rowvec());
        }
      for (std::size_t w = 0; w < d; ++w)
        for (auto u : fr) {
          b.add(X.row(w) % J.row(u), xname(w) + "*dh/d" + pn[u], jj);
          lifted(lift ? arma::rowvec(X.row(w) % Em % J.row(u)) : arma::rowvec());
        }
      if (v == IdentVersion::lse) {
        const arma::rowvec h = f.mean(X, eta);
        b.add(h, "h", jj);
        for (std::size_t w = 0; w < d; ++w) b.add(X.row(w) % h, xname(w) + "*h", jj);
        for (std::size_t w = 0; w < d; ++w)
          for (std::size_t w2 = w; w2 < d; ++w2)
            b.add(X.row(w) % X.row(w2) % h, w == w2 ? xname(w) + "^2*h" : xname(w) + "*" + xname(w2) + "*h", jj);
      }
      continue;
    }

    // density (gate-expert): u = exp(beta1^T x) N(y; h, nu), derivatives in (beta1, eta, nu).
    if (y.n_elem != n) throw InvalidArgument("identify: the density version needs y at every point");
    const double nu = s.nu[j];
    const arma::rowvec h = f.mean(X, eta);
    const arma::rowvec r = y - h;
    const arma::rowvec E = arma::exp(s.location.col(j).t() * X);
    const arma::rowvec N = arma::exp(log_normal_pdf(y, h, nu));
    const arma::rowvec A = r % r / (nu * nu) - 1.0 / nu;
    const arma::rowvec Nm = N % r / nu;
    const arma::rowvec Nmm = N % A;
    const arma::rowvec Nn = 0.5 * Nmm;
    const arma::rowvec Nmn = Nn % r / nu - N % r / (nu * nu);
    const arma::rowvec Nnn = 0.5 * Nn % A + 0.5 * N % (-2.0 * r % r / (nu * nu * nu) + 1.0 / (nu * nu));
    // Parameters: kind 0 = beta1_w, 1 = eta_u, 2 = nu.
    struct P {
      int kind;
      std::size_t index;
      std::string name;
    };
    std::vector<P> ps;
    for (std::size_t w = 0; w < d; ++w) ps.push_back({0, w, d == 1 ? "beta1" : "beta1_" + std::to_string(w + 1)});
    for (auto u : fr) ps.push_back({1, u, pn[u]});
    ps.push_back({2, 0, "nu"});
    auto first = [&](const P& a) -> arma::rowvec {
      if (a.kind == 0) return X.row(a.index) % E % N;
      if (a.kind == 1) return E % Nm % J.row(a.index);
      return E % Nn;
    };
    auto second = [&](const P& a, const P& c) -> arma::rowvec {
      const P& lo = a.kind <= c.kind ? a : c;
      const P& hi = a.kind <= c.kind ? c : a;
      if (lo.kind == 0 && hi.kind == 0) return X.row(lo.index) % X.row(hi.index) % E % N;
      if (lo.kind == 0 && hi.kind == 1) return X.row(lo.index) % E % Nm % J.row(hi.index);
      if (lo.kind == 0 && hi.kind == 2) return X.row(lo.index) % E % Nn;
      if (lo.kind == 1 && hi.kind == 1)
        return E % (Nmm % J.row(lo.index) % J.row(hi.index) + Nm % Hrow(lo.index, hi.index));
      if (lo.kind == 1 && hi.kind == 2) return E % Nmn % J.row(lo.index);
      return E % Nnn;
    };
    b.add(E % N, "u", jj);
    for (const auto& a : ps) b.add(first(a), "du/d" + a.name, jj);
    for (std::size_t a = 0; a < ps.size(); ++a)
      for (std::size_t c = a; c < ps.size(); ++c) b.add(second(ps[a], ps[c]), d2name("u", ps[a].name, ps[c].name), jj);
  }
  b.finish(n);
  if (!fs_lift_cols.empty() && fs_lift_cols.size() == fs.F.n_cols) {
    fs.lifted.set_size(n, fs_lift_cols.size());
    for (std::size_t c = 0; c < fs_lift_cols.size(); ++c) fs.lifted.col(c) = fs_lift_cols[c];
  }
  fs.derivatives = hess_source;
  fs.derivative_accuracy = hess_acc;
  if (v == IdentVersion::gate_expert || v == IdentVersion::density)
    fs.derivatives += "; Gaussian density derivatives (mean, variance) analytic";
  return fs;
}

// ---------------------------------------------------------------------------
// Analysis

arma::mat sparse_basis(const arma::mat& N, double tol) {
  arma::mat A = N.t();  // z x m
  const std::size_t z = A.n_rows, m = A.n_cols;
  std::size_t row = 0;
  for (std::size_t c = 0; c < m && row < z; ++c) {
    const arma::vec col = arma::abs(A.col(c).subvec(row, z - 1));
    const std::size_t p = row + col.index_max();
    if (std::abs(A(p, c)) <= tol) continue;
    A.swap_rows(row, p);
    A.row(row) /= A(row, c);
    for (std::size_t r2 = 0; r2 < z; ++r2)
      if (r2 != row && A(r2, c) != 0) A.row(r2) -= A(r2, c) * A.row(row);
    ++row;
  }
  A.elem(arma::find(arma::abs(A) < 1e-12)).zeros();
  return A;
}

namespace {

std::string format_coef(double c) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", c);
  return buf;
}

/// "a - 0.5*b + c = 0"
std::string relation_text(const std::vector<std::pair<std::string, double>>& terms) {
  std::string s;
  for (std::size_t t = 0; t < terms.size(); ++t) {
    const double c = terms[t].second;
    const double a = std::abs(c);
    if (t == 0) s += c < 0 ? "-" : "";
    else s += c < 0 ? " - " : " + ";
    if (std::abs(a - 1) > 5e-7) s += format_coef(a) + "*";
    s += terms[t].first;
  }
  return s + " = 0";
}

void annotate(Relation& rel, const FunctionSet& fs, const IdentSetup* setup) {
  // Heat equation: d2u/dX2 = 2 du/dnu (gate-expert version).
  const bool dens = fs.version == IdentVersion::gate_expert || fs.version == IdentVersion::density;
  if (dens && setup && rel.experts.size() == 1 && rel.experts[0] >= 0 && rel.terms.size() >= 2) {
    // Positive homogeneity (relu): sum over the inner parameters v of v du/dv - c du/dc = 0.
    const std::size_t j = static_cast<std::size_t>(rel.experts[0]);
    const auto pn = setup->experts->param_names();
    arma::vec want(pn.size(), arma::fill::zeros), got(pn.size(), arma::fill::zeros);
    for (std::size_t u = 0; u < pn.size(); ++u) want[u] = (pn[u].rfind("c", 0) == 0 ? -1.0 : 1.0) * setup->eta(u, j);
    bool only_first = true;
    for (const auto& t : rel.terms) {
      const std::string bn = fs.base_names[t.column];
      bool found = false;
      for (std::size_t u = 0; u < pn.size(); ++u)
        if (bn == "du/d" + pn[u]) got[u] = t.coef, found = true;
      only_first = only_first && found;
    }
    const double nw = arma::norm(want), ng = arma::norm(got);
    if (only_first && nw > 0 && ng > 0 && std::abs(arma::dot(want, got)) / (nw * ng) > 1 - 1e-6)
      rel.note = "positive homogeneity: c phi(z) = (c/s) phi(s z) for s > 0 (relu), so the inner parameters' "
                 "derivatives weighted by their values equal c du/dc";
  }
  if (dens && rel.terms.size() == 2) {
    const auto& a = rel.terms[0];
    const auto& c = rel.terms[1];
    const std::string an = fs.base_names[a.column], cn = fs.base_names[c.column];
    auto is_heat = [](const std::string& second, const std::string& first, double cs, double cf) {
      return second.rfind("d2u/d", 0) == 0 && second.back() == '2' && second.find('(') == std::string::npos &&
             first == "du/dnu" && std::abs(cf / cs + 2) < 1e-5;
    };
    if (is_heat(an, cn, a.coef, c.coef) || is_heat(cn, an, c.coef, a.coef))
      rel.note = "heat equation: d2u/d(mean)2 = 2 du/dnu";
    else if (an.rfind("du/d", 0) == 0 && cn.rfind("d2u/(dbeta1", 0) == 0 && std::abs(a.coef + c.coef) < 1e-5)
      rel.note = "gate-expert interaction: du/d" + an.substr(4) + " = " + cn;
  }
  if (fs.version == IdentVersion::gate && setup && setup->gating) {
    // Scaling direction: theta_p d/dtheta_p for plain parameters, d/d(log t) for
    // log-parametrised ones (log_tau: tau d/dtau = d/dlog tau).
    arma::vec theta = setup->gating->params();
    const auto pnames = setup->gating->param_names();
    for (std::size_t p = 0; p < theta.n_elem && p < pnames.size(); ++p)
      if (pnames[p].rfind("log_", 0) == 0 || pnames[p].find(".log_") != std::string::npos) theta[p] = 1.0;
    arma::vec v(theta.n_elem, arma::fill::zeros);
    for (const auto& t : rel.terms)
      if (t.column < v.n_elem) v[t.column] = t.coef;
    const double nt = arma::norm(theta), nv = arma::norm(v);
    if (nt > 0 && nv > 0 && std::abs(arma::dot(theta, v)) / (nt * nv) > 1 - 1e-6) {
      // Read it with the log-parameter's coefficient 1: the others are then the parameter values.
      for (std::size_t p = 0; p < pnames.size() && p < v.n_elem; ++p)
        if (pnames[p] == "log_tau" && v[p] != 0) {
          const double c0 = v[p];
          std::vector<std::pair<std::string, double>> tt;
          for (auto& t : rel.terms) t.coef /= c0, tt.emplace_back(t.name, t.coef);
          rel.text = relation_text(tt);
          break;
        }
    }
    if (nt > 0 && nv > 0 && std::abs(arma::dot(theta, v)) / (nt * nv) > 1 - 1e-6)
      rel.note = "scale invariance: theta . d/dtheta = 0 (scaling all gate parameters together leaves the gate "
                 "unchanged, e.g. tau d/dtau = -(beta . d/dbeta))";
  }
}

/// An m-vector of coefficients (the functions' own units) as a Relation: terms
/// below coef_drop (relative) dropped, the largest coefficient 1.
Relation relation_from(const arma::vec& coef, const FunctionSet& fs, const IdentReport& rep, double coef_drop) {
  Relation rel;
  const double mx = arma::abs(coef).max();
  if (!(mx > 0)) return rel;
  arma::vec co = coef;
  co.elem(arma::find(arma::abs(co) < coef_drop * mx)).zeros();
  std::size_t lead = 0;
  while (std::abs(co[lead]) < mx * (1 - 1e-6)) ++lead;
  co /= co[lead];
  std::vector<int> ex;
  std::vector<std::pair<std::string, double>> tt;
  for (std::size_t c = 0; c < co.n_elem; ++c)
    if (co[c] != 0) {
      rel.terms.push_back({c, rep.names[c], co[c]});
      ex.push_back(fs.expert[c]);
      tt.emplace_back(rep.names[c], co[c]);
    }
  std::sort(ex.begin(), ex.end());
  ex.erase(std::unique(ex.begin(), ex.end()), ex.end());
  rel.experts = ex;
  rel.text = relation_text(tt);
  rel.zero_function = rel.terms.size() == 1;
  return rel;
}

/// Gaussian version: keep in rep.relations only the h-level relations that lift
/// to the density (the same combination of the density-level counterparts
/// vanishes); move the others to rep.excused. The lifting relations are the
/// null space of the stacked matrix [F; L] (each block scaled by its Frobenius
/// norm, then each column to unit norm), decided at the exact-relation level
/// and read back as a sparse basis.
void lift_relations(IdentReport& rep, const FunctionSet& fs, const IdentOptions& opt, const IdentSetup* setup,
                    double exact_rel) {
  const std::size_t m = fs.F.n_cols, n = fs.F.n_rows;
  rep.n_h_relations = rep.relations.size();
  if (rep.relations.empty()) return;
  const double fF = arma::norm(fs.F, "fro"), fL = arma::norm(fs.lifted, "fro");
  if (!(fF > 0) || !(fL > 0)) return;
  arma::mat G(2 * n, m);
  G.rows(0, n - 1) = fs.F / fF;
  G.rows(n, 2 * n - 1) = fs.lifted / fL;
  arma::vec g(m);
  for (std::size_t c = 0; c < m; ++c) g[c] = arma::norm(G.col(c));
  const double gmax = g.max();
  std::vector<Relation> kept, excused;
  std::vector<std::size_t> nzc;
  for (std::size_t c = 0; c < m; ++c) {
    if (g[c] > opt.zero_threshold * gmax) {
      nzc.push_back(c);
      continue;
    }
    arma::vec co(m, arma::fill::zeros);  // zero at both levels
    co[c] = 1;
    Relation rel = relation_from(co, fs, rep, opt.coef_drop);
    rel.note = "identically zero for the density too";
    kept.push_back(rel);
  }
  arma::mat Gs(2 * n, nzc.size());
  for (std::size_t i = 0; i < nzc.size(); ++i) Gs.col(i) = G.col(nzc[i]) / g[nzc[i]];
  arma::mat U2, V2;
  arma::vec s2;
  if (!arma::svd_econ(U2, s2, V2, Gs, "right")) throw std::runtime_error("identify: SVD failed (lift)");
  std::size_t rr = 0;
  while (rr < s2.n_elem && s2[rr] > exact_rel * s2[0]) ++rr;
  if (rr < nzc.size()) {
    const arma::mat B = sparse_basis(V2.cols(rr, nzc.size() - 1));
    for (std::size_t i = 0; i < B.n_rows; ++i) {
      arma::vec co(m, arma::fill::zeros);  // the functions' own units
      for (std::size_t c = 0; c < nzc.size(); ++c) co[nzc[c]] = B(i, c) / g[nzc[c]];
      Relation rel = relation_from(co, fs, rep, opt.coef_drop);
      if (rel.terms.empty()) continue;
      annotate(rel, fs, setup);
      kept.push_back(rel);
    }
  }
  // The h-level relations found before, each with the size of its lift.
  arma::vec ln(m);
  for (std::size_t c = 0; c < m; ++c) ln[c] = arma::norm(fs.lifted.col(c));
  for (Relation rel : rep.relations) {
    arma::vec co(m, arma::fill::zeros);
    for (const auto& t : rel.terms) co[t.column] = t.coef;
    const double lifted = arma::norm(fs.lifted * co) / std::max(arma::dot(arma::abs(co), ln), 1e-300);
    if (lifted <= 1e-8) continue;  // it lifts: in the span reported above
    std::ostringstream note;
    note.precision(2);
    note << (rel.zero_function ? "identically zero at the h level only" : "parameterisation relation")
         << ": its density-level counterpart is not 0 (relative size " << lifted << ")";
    rel.note = note.str();
    excused.push_back(rel);
  }
  rep.relations = kept;
  rep.excused = excused;
}

IdentReport analyse_impl(const FunctionSet& fs, const IdentOptions& opt, const IdentSetup* setup) {
  opt.validate();
  IdentReport rep;
  rep.version = fs.version;
  rep.n_points = fs.F.n_rows;
  rep.n_functions = fs.F.n_cols;
  rep.derivatives = fs.derivatives;
  rep.derivative_accuracy = fs.derivative_accuracy;
  for (std::size_t c = 0; c < fs.F.n_cols; ++c) rep.names.push_back(fs.full_name(c));
  const std::size_t m = fs.F.n_cols;
  if (m == 0) throw InvalidArgument("identify: empty function set");
  if (!fs.F.is_finite()) throw InvalidArgument("identify: the function set has non-finite values");
  arma::vec norms(m);
  for (std::size_t c = 0; c < m; ++c) norms[c] = arma::norm(fs.F.col(c));
  // Identically zero: relative to the largest column of the same expert (the
  // experts' scales can differ by many orders, e.g. exp(beta1^T x) factors).
  std::map<int, double> group_max;
  for (std::size_t c = 0; c < m; ++c) group_max[fs.expert[c]] = std::max(group_max[fs.expert[c]], norms[c]);
  std::vector<std::size_t> nz, zero;
  for (std::size_t c = 0; c < m; ++c)
    (norms[c] > opt.zero_threshold * group_max[fs.expert[c]] ? nz : zero).push_back(c);
  rep.n_zero_functions = zero.size();
  for (auto c : zero) {
    Relation r;
    r.zero_function = true;
    r.terms.push_back({c, rep.names[c], 1.0});
    r.experts = {fs.expert[c]};
    r.text = rep.names[c] + " = 0";
    rep.relations.push_back(r);
  }
  const std::size_t mz = nz.size();
  if (mz > 0) {
    if (fs.F.n_rows < mz)
      throw InvalidArgument("identify: " + std::to_string(fs.F.n_rows) + " points for " + std::to_string(mz) +
                            " functions; use more points");
    arma::mat Fs(fs.F.n_rows, mz);
    for (std::size_t c = 0; c < mz; ++c) Fs.col(c) = fs.F.col(nz[c]) / norms[nz[c]];
    arma::mat U, V;
    arma::vec s;
    if (!arma::svd_econ(U, s, V, Fs, "right")) throw std::runtime_error("identify: SVD failed");
    rep.singular_values = s;
    rep.threshold = opt.rel_threshold * s[0];
    std::size_t rt = 0;
    while (rt < s.n_elem && s[rt] > rep.threshold) ++rt;
    rep.rank_threshold = rt;
    const double exact_rel = opt.exact_threshold > 0 ? opt.exact_threshold : (fs.analytic ? 1e-12 : 1e-9);
    rep.exact_level = exact_rel * s[0];
    std::size_t r = 0;
    while (r < s.n_elem && s[r] > rep.exact_level) ++r;
    rep.rank = r;
    rep.rank_gap = mz;
    double best = 0;
    std::size_t best_i = mz;
    for (std::size_t i = 0; i + 1 < s.n_elem; ++i) {
      const double g = s[i + 1] > 0 ? s[i] / s[i + 1] : kInf;
      if (g > best) best = g, best_i = i + 1;
    }
    rep.largest_gap = best;
    if (best > 1e3) rep.rank_gap = best_i;
    rep.deciding_gap = r < mz ? (s[r] > 0 ? s[r - (r > 0 ? 1 : 0)] / s[r] : kInf) : 0;
    // Relations: first within each expert (its own columns), then among the
    // columns each expert has left (cross-expert relations), so that relations
    // that hold per expert read per expert.
    auto local_null = [&](const std::vector<std::size_t>& cols, std::vector<std::size_t>& free, long forced) {
      std::vector<arma::vec> out;  // coefficient vectors over the nz columns (unit-norm units)
      free = cols;
      if (cols.empty()) return out;
      arma::mat sub(Fs.n_rows, cols.size());
      for (std::size_t c = 0; c < cols.size(); ++c) sub.col(c) = Fs.col(cols[c]);
      arma::mat Us, Vs;
      arma::vec ss;
      if (!arma::svd_econ(Us, ss, Vs, sub, "right")) throw std::runtime_error("identify: SVD failed");
      std::size_t rl = 0;
      while (rl < ss.n_elem && ss[rl] > exact_rel * ss[0]) ++rl;
      if (forced >= 0) rl = cols.size() - std::min<std::size_t>(static_cast<std::size_t>(forced), cols.size());
      if (rl >= cols.size()) return out;
      const arma::mat Bm = sparse_basis(Vs.cols(rl, cols.size() - 1));
      std::vector<bool> pivot(cols.size(), false);
      for (std::size_t row = 0; row < Bm.n_rows; ++row) {
        arma::vec v(mz, arma::fill::zeros);
        bool seen = false;
        for (std::size_t c = 0; c < cols.size(); ++c) {
          v[cols[c]] = Bm(row, c);
          if (!seen && std::abs(Bm(row, c)) > 0.5) pivot[c] = seen = true;
        }
        out.push_back(v);
      }
      free.clear();
      for (std::size_t c = 0; c < cols.size(); ++c)
        if (!pivot[c]) free.push_back(cols[c]);
      return out;
    };
    std::vector<arma::vec> coefs;
    if (r < mz) {
      std::map<int, std::vector<std::size_t>> by_expert;
      for (std::size_t c = 0; c < mz; ++c) by_expert[fs.expert[nz[c]]].push_back(c);
      std::vector<std::size_t> rest;
      if (by_expert.size() > 1 || !by_expert.count(-1)) {
        for (const auto& [e, cols] : by_expert) {
          if (e < 0) {
            rest.insert(rest.end(), cols.begin(), cols.end());
            continue;
          }
          std::vector<std::size_t> free;
          for (auto& v : local_null(cols, free, -1)) coefs.push_back(v);
          rest.insert(rest.end(), free.begin(), free.end());
        }
        std::sort(rest.begin(), rest.end());
      } else {
        for (std::size_t c = 0; c < mz; ++c) rest.push_back(c);
      }
      if (by_expert.size() > 1 || by_expert.count(-1)) {
        // The joint decision is authoritative: the remaining columns carry
        // exactly (joint nullity - relations found per expert) relations.
        std::vector<std::size_t> free;
        const long remaining = static_cast<long>(mz - r) - static_cast<long>(coefs.size());
        for (auto& v : local_null(rest, free, std::max(0L, remaining))) coefs.push_back(v);
      }
    }
    for (const arma::vec& cs : coefs) {
      const double mx = arma::abs(cs).max();
      if (!(mx > 0)) continue;
      arma::vec co(mz, arma::fill::zeros);
      for (std::size_t c = 0; c < mz; ++c)
        if (std::abs(cs[c]) >= opt.coef_drop * mx) co[c] = cs[c] / norms[nz[c]];
      const double cmax = arma::abs(co).max();
      std::size_t lead = 0;
      while (std::abs(co[lead]) < cmax * (1 - 1e-6)) ++lead;
      co /= co[lead];
      Relation rel;
      std::vector<int> ex;
      for (std::size_t c = 0; c < mz; ++c)
        if (co[c] != 0) {
          rel.terms.push_back({nz[c], rep.names[nz[c]], co[c]});
          ex.push_back(fs.expert[nz[c]]);
        }
      std::sort(ex.begin(), ex.end());
      ex.erase(std::unique(ex.begin(), ex.end()), ex.end());
      rel.experts = ex;
      std::vector<std::pair<std::string, double>> tt;
      for (const auto& t : rel.terms) tt.emplace_back(t.name, t.coef);
      rel.text = relation_text(tt);
      annotate(rel, fs, setup);
      rep.relations.push_back(rel);
    }
    if (!fs.lifted.is_empty()) lift_relations(rep, fs, opt, setup, exact_rel);
  } else if (!fs.lifted.is_empty()) {
    lift_relations(rep, fs, opt, setup, fs.analytic ? 1e-12 : 1e-9);
  }
  // Near relations: singular directions between the exact level and the threshold.
  if (mz > 0 && rep.rank_threshold < rep.rank) {
    arma::mat Fs(fs.F.n_rows, mz);
    for (std::size_t c = 0; c < mz; ++c) Fs.col(c) = fs.F.col(nz[c]) / norms[nz[c]];
    arma::mat U, V;
    arma::vec sv;
    if (arma::svd_econ(U, sv, V, Fs, "right")) {
      for (std::size_t i = rep.rank_threshold; i < rep.rank; ++i) {
        arma::vec co(mz, arma::fill::zeros);
        const double mx = arma::abs(V.col(i)).max();
        for (std::size_t c = 0; c < mz; ++c)
          if (std::abs(V(c, i)) >= 1e-3 * mx) co[c] = V(c, i) / norms[nz[c]];
        const double cmax = arma::abs(co).max();
        std::size_t lead = 0;
        while (std::abs(co[lead]) < cmax * (1 - 1e-6)) ++lead;
        co /= co[lead];
        Relation rel;
        std::vector<std::pair<std::string, double>> tt;
        for (std::size_t c = 0; c < mz; ++c)
          if (co[c] != 0) {
            rel.terms.push_back({nz[c], rep.names[nz[c]], co[c]});
            tt.emplace_back(rep.names[nz[c]], co[c]);
          }
        rel.text = relation_text(tt);
        std::ostringstream note;
        note.precision(3);
        note << "near relation: singular value " << sv[i] << " (ill-conditioned, not exact; terms below 1e-3 dropped)";
        rel.note = note.str();
        rep.near_relations.push_back(rel);
      }
    }
  }
  // Group relations that read the same for several experts.
  std::vector<std::string> keys;
  std::map<std::string, std::vector<int>> groups;
  for (const auto& rel : rep.relations) {
    std::string key;
    if (rel.experts.size() == 1 && rel.experts[0] >= 0) {
      std::vector<std::pair<std::string, double>> tt;
      for (const auto& t : rel.terms) tt.emplace_back(fs.base_names[t.column], t.coef);
      key = relation_text(tt);
      if (!rel.note.empty()) key += "   [" + rel.note + "]";
      if (!groups.count(key)) keys.push_back(key);
      groups[key].push_back(rel.experts[0]);
    } else {
      key = rel.text + (rel.note.empty() ? "" : "   [" + rel.note + "]");
      if (!groups.count(key)) keys.push_back(key);
      groups[key].push_back(-1);
    }
  }
  for (const auto& key : keys) {
    const auto& ex = groups[key];
    if (ex.size() == 1 && ex[0] < 0) {
      rep.grouped.push_back(key);
      continue;
    }
    std::string who = ex.size() == 1 ? "expert " : "experts ";
    for (std::size_t i = 0; i < ex.size(); ++i) who += (i ? ", " : "") + std::to_string(ex[i] + 1);
    rep.grouped.push_back(who + ": " + key);
  }
  rep.strongly_identifiable = rep.relations.empty();
  return rep;
}

}  // namespace

IdentReport analyse_function_set(const FunctionSet& fs, const IdentOptions& opt) {
  return analyse_impl(fs, opt, nullptr);
}

IdentReport identify(const IdentSetup& s, IdentVersion v, const IdentOptions& opt) {
  opt.validate();
  const std::size_t d = s.dim(), k = s.n_experts();
  // Size of the set (one point), then the points.
  Rng probe_rng(1);
  const arma::mat X1 = draw_design(opt.design, d, 1, probe_rng);
  const FunctionSet probe = function_set(s, v, X1, s.experts->mean(X1, s.eta.col(0)), opt);
  const std::size_t m = probe.F.n_cols;
  const std::size_t n = opt.n_points > 0 ? opt.n_points : std::max<std::size_t>(400, 4 * m);
  Rng rng(derive_seed(opt.seed, {1}));
  const arma::mat X = draw_design(opt.design, d, n, rng);
  arma::rowvec y(n, arma::fill::zeros);
  if (v == IdentVersion::gate_expert || v == IdentVersion::density || v == IdentVersion::gaussian) {
    // y near each expert in turn, spread 1.5 standard deviations (gaussian: for the density lift).
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t j = i % k;
      const arma::mat xi = X.col(i);
      y[i] = s.experts->mean(xi, s.eta.col(j))[0] + 1.5 * std::sqrt(s.nu[j]) * rng.normal();
    }
  }
  const FunctionSet fs = function_set(s, v, X, y, opt);
  IdentReport rep = analyse_impl(fs, opt, &s);
  rep.expert_family = s.experts->family_json().dump();
  rep.gating_family = s.gating ? s.gating->family_json().dump() : "";
  rep.source = s.source;
  for (std::size_t j = 0; j < k; ++j) {
    std::ostringstream os;
    os.precision(4);
    os << "expert " << j + 1 << ": " << s.experts->to_json(s.eta.col(j)).dump() << ", nu = " << s.nu[j] << ", beta1 = "
       << json(arma::conv_to<std::vector<double>>::from(s.location.col(j))).dump();
    rep.parameters.push_back(os.str());
  }
  if (s.gating && s.gating->n_params() > 0) {
    std::ostringstream os;
    os.precision(4);
    os << "gate " << s.gating->family() << ": ";
    const auto gn = s.gating->param_names();
    const arma::vec gp = s.gating->params();
    for (std::size_t p = 0; p < gp.n_elem; ++p) os << (p ? ", " : "") << (p < gn.size() ? gn[p] : "?") << " = " << gp[p];
    rep.parameters.push_back(os.str());
  }
  rep.dim = d;
  rep.n_experts = k;
  rep.n_points = n;
  return rep;
}

// ---------------------------------------------------------------------------
// Output

json IdentReport::to_json() const {
  json j;
  j["version"] = ident_version_name(version);
  j["expert_family"] = expert_family.empty() ? json(nullptr) : json::parse(expert_family);
  j["gating"] = gating_family.empty() ? json(nullptr) : json::parse(gating_family);
  j["parameters"] = source;
  j["parameter_values"] = parameters;
  j["dim"] = dim;
  j["n_experts"] = n_experts;
  j["n_points"] = n_points;
  j["n_functions"] = n_functions;
  j["functions"] = names;
  j["derivatives"] = derivatives;
  j["derivative_accuracy"] = derivative_accuracy;
  j["singular_values"] = arma::conv_to<std::vector<double>>::from(singular_values);
  j["n_zero_functions"] = n_zero_functions;
  j["rank"] = rank;
  j["rank_nonzero_functions"] = singular_values.n_elem;
  j["rank_at_largest_gap"] = rank_gap;
  j["rank_threshold_only"] = rank_threshold;
  j["threshold"] = threshold;
  j["deciding_gap"] = std::isfinite(deciding_gap) ? json(deciding_gap) : json("inf");
  j["largest_gap"] = std::isfinite(largest_gap) ? json(largest_gap) : json("inf");
  json rels = json::array();
  for (const auto& r : relations) {
    json t = json::array();
    for (const auto& term : r.terms) t.push_back({{"function", term.name}, {"coef", term.coef}});
    json e = json::array();
    for (int x : r.experts) e.push_back(x >= 0 ? json(x + 1) : json(nullptr));
    rels.push_back({{"relation", r.text}, {"terms", t}, {"experts", e}, {"identically_zero", r.zero_function},
                    {"note", r.note}});
  }
  j["relations"] = rels;
  json exc = json::array();
  for (const auto& r : excused)
    exc.push_back({{"relation", r.text}, {"identically_zero", r.zero_function}, {"note", r.note}});
  j["excused"] = exc;
  j["n_h_relations"] = n_h_relations;
  j["exact_level"] = exact_level;
  json near = json::array();
  for (const auto& r : near_relations) near.push_back({{"relation", r.text}, {"note", r.note}});
  j["near_relations"] = near;
  j["relations_grouped"] = grouped;
  j["strongly_identifiable"] = strongly_identifiable;
  j["verdict"] = strongly_identifiable ? "strongly identifiable" : "not strongly identifiable";
  return j;
}

std::string IdentReport::text() const {
  std::ostringstream os;
  os.precision(3);
  const std::string what = version == IdentVersion::gate ? "gate's parameter derivatives" : "set's functions";
  os << "identify (" << ident_version_name(version) << " version): expert family " << expert_family;
  if (!gating_family.empty()) os << ", gating " << gating_family;
  os << ", d = " << dim << ", k = " << n_experts << ", " << source << ", N = " << n_points
     << (version == IdentVersion::gate ? " points x k experts (rows)" : " points") << "\n";
  for (const auto& p : parameters) os << "  at " << p << "\n";
  os << "  functions: " << n_functions;
  if (n_experts > 0 && version != IdentVersion::gate) {
    os << " (per expert:";
    const std::size_t per = n_functions / n_experts;
    for (std::size_t c = 0; c < per && c < names.size(); ++c) {
      std::string nm = names[c];
      const auto br = nm.rfind('[');
      if (br != std::string::npos) nm = nm.substr(0, br);
      os << " " << nm;
    }
    os << ")";
  }
  os << "\n  derivatives: " << derivatives << "\n";
  os << "  singular values (unit-norm columns):";
  for (std::size_t i = 0; i < singular_values.n_elem; ++i) os << " " << singular_values[i];
  os << "\n";
  const std::size_t mz = singular_values.n_elem;
  os << "  numerical rank " << rank << " of " << n_functions << " functions";
  if (n_zero_functions) os << " (" << n_zero_functions << " identically zero)";
  if (rank < mz) {
    os << "; exact relations: s_" << rank + 1 << " = " << singular_values[rank] << " <= " << exact_level
       << " (exact-relation level), gap s_" << rank << " / s_" << rank + 1 << " = " << deciding_gap;
  } else {
    os << "; smallest singular value " << (mz ? singular_values[mz - 1] : 0.0) << " > exact-relation level "
       << exact_level;
  }
  os << "\n  threshold alone (" << threshold << "): rank " << rank_threshold
     << (rank_threshold == rank ? " (agrees)" : " (differs: singular values between the gap and the threshold)")
     << "; largest gap overall " << largest_gap << " -> rank " << rank_gap
     << (rank_gap == rank ? " (agrees)" : " (differs; treat the verdict with care)") << "\n";
  if (!relations.empty()) {
    os << "  relations (" << relations.size() << ", sparse basis of the null space):\n";
    for (const auto& g : grouped) os << "    " << g << "\n";
  }
  if (!excused.empty() || n_h_relations > 0) {
    os << "  density lift: " << relations.size() << " of the " << n_h_relations
       << " h-level relation(s) hold for the density too (counted above); not counted (" << excused.size() << "):\n";
    std::size_t shown = 0;
    for (const auto& e : excused) {
      if (++shown > 12) {
        os << "    ... (" << excused.size() - 12 << " more; --json lists all)\n";
        break;
      }
      os << "    " << e.text << "   [" << e.note << "]\n";
    }
  }
  if (!near_relations.empty()) {
    os << "  near relations (" << near_relations.size() << ": singular values between the exact level and the threshold;"
       << " ill-conditioned, not exact):\n";
    for (std::size_t i = 0; i < near_relations.size() && i < 3; ++i)
      os << "    " << near_relations[i].text << "   [" << near_relations[i].note << "]\n";
  }
  if (strongly_identifiable)
    os << "  verdict: " << (version == IdentVersion::gate ? "no relation among the gate's parameter derivatives"
                                                           : "strongly identifiable")
       << " (full rank " << n_functions << (near_relations.empty() ? "" : "; numerically ill-conditioned") << ")\n";
  else
    os << "  verdict: NOT " << (version == IdentVersion::gate ? "locally identifiable gate parameters" : "strongly identifiable")
       << ": " << relations.size() << " relation(s) among the " << what << "\n";
  return os.str();
}

}  // namespace moerate
