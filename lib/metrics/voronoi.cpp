#include "moerate/metrics/voronoi.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <sstream>

#include "moerate/core/error.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/model/design.hpp"

namespace moerate {

namespace {

// Which row of the table in models.md section 6 applies.
enum class Row {
  rbar_linear,     // softmax-type gate, linear (or polynomial) experts: r = rbar(m_j) exponents
  strong,          // strongly identifiable experts (ffn): exponent 2 everywhere
  laplace_linear,  // Laplace gate, linear (or polynomial) experts
};

// Which translation the gate admits.
enum class Shift {
  full,        // (t0, t1) on (beta0, beta1): softmax and its relatives
  beta0_only,  // not translation invariant in the location (Laplace: w has no translation)
  none,        // unnormalised gates of the regression model (sigmoid): no symmetry at all
};

struct Block {
  enum class Source { location, eta, nu };
  std::string name;
  Source source;
  std::size_t offset = 0, size = 0;  // inside eta (Source::eta)
};

struct Setup {
  Row row = Row::rbar_linear;
  Shift shift = Shift::full;
  std::string row_name;
  std::vector<Block> blocks;   // location, expert blocks, nu (gaussian kind only)
  std::vector<std::string> notes;
  bool has_nu = true;
};

// A fitted atom with every expert parameter vector equivalent to its eta.
struct FitAtom {
  Atom atom;
  std::vector<arma::vec> equivalents;
  double gate_mean = arma::datum::nan;  // average gate weight over the design (nan: not computed)
};

Setup make_setup(const GaussianMoE& truth, const GaussianMoE& fit) {
  const std::string fn = "voronoi_loss";
  if (truth.dim() != fit.dim())
    fail(fn, "fit dimension", "must equal the truth's dimension " + std::to_string(truth.dim()), fit.dim());
  if (truth.covariates() != fit.covariates())
    throw InvalidArgument(fn + ": truth and fit must read the same covariates; the truth reads (" +
                          truth.covariates().describe() + "), the fit (" + fit.covariates().describe() + ")");
  if (truth.kind() != fit.kind())
    throw InvalidArgument(fn + ": truth and fit must be the same model kind (gaussian or regression)");
  if (truth.experts().family_json() != fit.experts().family_json())
    throw InvalidArgument(fn + ": truth and fit must have the same expert family; got " +
                          truth.experts().family_json().dump() + " and " +
                          fit.experts().family_json().dump());
  if (truth.gating().location_name() != fit.gating().location_name())
    throw InvalidArgument(fn + ": truth and fit gates must have the same kind of location; got '" +
                          truth.gating().location_name() + "' and '" + fit.gating().location_name() + "'");

  Setup s;
  const Gating& g = truth.gating();
  const std::string gf = g.family(), ef = truth.experts().family();
  s.has_nu = truth.kind() == ModelKind::gaussian;

  bool strong = false;
  if (ef.rfind("ffn", 0) == 0) {
    strong = true;
  } else if (ef == "polynomial") {
    s.notes.push_back("polynomial experts are not strongly identifiable: treated like linear "
                      "experts (rbar exponents)");
  } else if (ef != "linear") {
    s.notes.push_back("expert family '" + ef + "' is not in models.md section 6: treated like "
                      "linear experts (rbar exponents, not strongly identifiable)");
  }
  const bool laplace = gf == "laplace" || g.location_name() == "w";
  if (strong) {
    s.row = Row::strong;
    s.row_name = "strongly identifiable experts: exponent 2";
    if (laplace)
      s.notes.push_back("Laplace gate with strongly identifiable experts has no row in models.md "
                        "section 6: exponent 2 used for every block");
  } else if (laplace) {
    s.row = Row::laplace_linear;
    s.row_name = "Laplace gate, linear experts: |Dw|^2 + |Da|^2 + |Db|^r + |Dnu|^(r/2)";
  } else {
    s.row = Row::rbar_linear;
    s.row_name = "softmax gate, linear experts: |Dbeta1|^r + |Db|^r + |Da|^(r/2) + |Dnu|^(r/2)";
  }
  static const std::vector<std::string> known_gates = {
      "softmax", "temperature", "activated-temperature", "activated_temperature", "topk",
      "laplace", "hierarchical", "sigmoid"};
  if (std::find(known_gates.begin(), known_gates.end(), gf) == known_gates.end())
    s.notes.push_back("gating family '" + gf + "' is not in models.md section 6: softmax rows, with "
                      "the atom location used as beta1");
  if (gf.find("hier") != std::string::npos)
    s.notes.push_back("hierarchical gating: losses on flat atoms (each expert's within-group gate); "
                      "nested cells not implemented, so a relabelled copy need not give 0");
  if (truth.kind() == ModelKind::bernoulli)
    s.notes.push_back("Bernoulli experts: no variance term; a Bernoulli MoE is identified only through "
                      "P(y = 1 | x), so this loss is descriptive, with no rate from the theory");
  else if (!s.has_nu && !strong)
    s.notes.push_back("regression model with experts that are not strongly identifiable: theory "
                      "gives no polynomial rate (models.md section 7); rbar exponents used, nu dropped");

  if (g.regression_only()) s.shift = Shift::none;
  else if (g.translation_invariant()) s.shift = Shift::full;
  else s.shift = Shift::beta0_only;

  s.blocks.push_back({g.location_name(), Block::Source::location, 0, truth.gate_dim()});
  for (const auto& b : truth.experts().blocks())
    s.blocks.push_back({b.name, Block::Source::eta, b.offset, b.size});
  if (s.has_nu) s.blocks.push_back({"nu", Block::Source::nu, 0, 1});
  return s;
}

// Exponent rule of a block in a D2 cell of size >= 2: "2", "r" or "r/2".
std::string exponent_rule(const Setup& s, const Block& b) {
  switch (s.row) {
    case Row::strong:
      return "2";
    case Row::laplace_linear:
      if (b.source == Block::Source::nu) return "r/2";
      if (b.source == Block::Source::eta && b.name == "b") return "r";
      return "2";
    case Row::rbar_linear:
    default:
      if (b.source == Block::Source::location) return "r";
      if (b.source == Block::Source::eta && b.name == "b") return "r";
      return "r/2";
  }
}

double rbar_of(const VoronoiOptions& opt, std::size_t m, std::size_t true_atom) {
  const auto it = opt.rbar.find(int(m));
  if (it == opt.rbar.end()) {
    std::ostringstream msg;
    msg << "voronoi_loss: no rbar known for a Voronoi cell of " << m << " fitted atoms (true atom "
        << true_atom << "); rbar(m) for m >= 4 is not known exactly (models.md section 6): supply "
        << "a value, e.g. --rbar " << m << "=" << 2 * m + 1 << " (VoronoiOptions::rbar)";
    throw InvalidArgument(msg.str());
  }
  return it->second;
}

double exponent_value(const std::string& rule, double r) {
  if (rule == "2") return 2.0;
  if (rule == "r") return r;
  return r / 2.0;
}

// Squared distance between eta-equivalents and a true eta; the index of the nearest.
double eta_dist2(const std::vector<arma::vec>& eqs, const arma::vec& eta_true, std::size_t& best) {
  double d2 = kInf;
  best = 0;
  for (std::size_t e = 0; e < eqs.size(); ++e) {
    const double v = arma::accu(arma::square(eqs[e] - eta_true));
    if (v < d2) d2 = v, best = e;
  }
  return d2;
}

double atom_dist2(const FitAtom& f, const Atom& t, bool has_nu) {
  std::size_t e = 0;
  double d2 = arma::accu(arma::square(f.atom.location - t.location)) + eta_dist2(f.equivalents, t.eta, e);
  if (has_nu) d2 += (f.atom.nu - t.nu) * (f.atom.nu - t.nu);
  return d2;
}

double block_error(const Block& b, const FitAtom& f, const arma::vec& eta, const Atom& t) {
  switch (b.source) {
    case Block::Source::location:
      return arma::norm(f.atom.location - t.location);
    case Block::Source::nu:
      return std::abs(f.atom.nu - t.nu);
    case Block::Source::eta:
    default:
      return arma::norm(eta.subvec(b.offset, b.offset + b.size - 1) -
                        t.eta.subvec(b.offset, b.offset + b.size - 1));
  }
}

json nan_to_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// The loss with the atoms as given (translation already applied): models.md section 6.
VoronoiLoss compute_loss(const std::vector<Atom>& truth, const std::vector<FitAtom>& fit,
                         const Setup& s, const VoronoiOptions& opt) {
  const std::size_t kt = truth.size(), kf = fit.size();
  VoronoiLoss L;
  L.kind = kf > kt ? "D2" : "D1";

  // Cells: nearest true atom on (location, eta, nu); ties to the smallest index.
  std::vector<std::vector<std::size_t>> cells(kt);
  for (std::size_t i = 0; i < kf; ++i) {
    std::size_t best = 0;
    double bd = kInf;
    for (std::size_t j = 0; j < kt; ++j) {
      const double d2 = atom_dist2(fit[i], truth[j], s.has_nu);
      if (d2 < bd) bd = d2, best = j;
    }
    cells[best].push_back(i);
  }

  double W = 0, S = 0, multi = 0;
  auto& T = L.terms;
  for (const auto& b : s.blocks) {
    T["exact." + b.name] = 0.0;
    T["atommax." + b.name] = kNaN;
    T["cell." + b.name] = kNaN;
  }
  json cells_json = json::array();
  json exps = json::object();
  for (std::size_t j = 0; j < kt; ++j) {
    const std::string cj = "cell" + std::to_string(j + 1);
    const std::size_t m = cells[j].size();
    double wsum = 0;
    for (std::size_t i : cells[j]) wsum += std::exp(fit[i].atom.beta0);
    const double wt = std::exp(truth[j].beta0);
    const double werr = std::abs(wsum - wt);
    W += werr;
    T[cj + ".size"] = double(m);
    T[cj + ".weight"] = werr;
    for (const auto& b : s.blocks) {
      T[cj + "." + b.name] = kNaN;
      T[cj + ".atommax." + b.name] = kNaN;
    }

    // Exponents of this cell (D2 cells of two or more atoms only).
    std::map<std::string, double> ex;
    const bool powered = L.kind == "D2" && m >= 2;
    if (powered) {
      bool need_r = false;
      for (const auto& b : s.blocks) need_r = need_r || exponent_rule(s, b) != "2";
      const double r = need_r ? rbar_of(opt, m, j + 1) : kNaN;
      for (const auto& b : s.blocks) ex[b.name] = exponent_value(exponent_rule(s, b), r);
      json e = json::object();
      for (const auto& kv : ex) e[kv.first] = kv.second;
      if (need_r) e["rbar"] = r;
      exps[std::to_string(m)] = e;
    }

    json cj_json{{"true_atom", j + 1},
                 {"size", m},
                 {"true_weight", wt},
                 {"fitted_weight", wsum},
                 {"weight_error", werr}};
    json fitted = json::array(), atoms_json = json::array();
    std::map<std::string, double> cell_max, cell_wsum;  // unweighted max; sum_i w_i |D-B|^p
    for (std::size_t i : cells[j]) {
      std::size_t e = 0;
      eta_dist2(fit[i].equivalents, truth[j].eta, e);
      const arma::vec& eta = fit[i].equivalents[e];
      const double wi = std::exp(fit[i].atom.beta0);
      double contrib = 0;
      json errs = json::object();
      for (const auto& b : s.blocks) {
        const double err = block_error(b, fit[i], eta, truth[j]);
        errs[b.name] = err;
        auto& cm = cell_max[b.name];
        cm = std::max(cm, err);
        if (m == 1) {
          T["exact." + b.name] += err;
          contrib += err;
        } else {
          double& ov = T["atommax." + b.name];
          ov = std::isnan(ov) ? err : std::max(ov, err);
          const double p = powered ? ex[b.name] : 1.0;
          contrib += std::pow(err, p);
          cell_wsum[b.name] += wi * std::pow(err, p);
        }
      }
      contrib *= wi;
      if (m == 1) S += contrib;
      else multi += contrib;
      fitted.push_back(i + 1);
      json aj{{"index", i + 1}, {"weight", wi}, {"errors", errs}, {"term", contrib}};
      if (std::isfinite(fit[i].gate_mean)) {
        aj["gate_mean"] = fit[i].gate_mean;
        aj["negligible"] = fit[i].gate_mean < opt.negligible_gate;
      }
      if (fit[i].equivalents.size() > 1) aj["equivalent"] = e;
      atoms_json.push_back(aj);
    }
    // Per-block errors (models.md 9.2): a singleton cell's error; in a cell of
    // m >= 2 atoms the weighted power mean E_B = (sum w_i |D-B_i|^p / sum w_i)^(1/p),
    // the quantity the theory bounds by n^(-1/(2p)). The unweighted maximum over
    // the cell's atoms is kept as cell<j>.atommax.B (not bounded by the theory).
    json cell_errs = json::object(), cell_max_json = json::object();
    for (const auto& b : s.blocks) {
      if (m == 1) {
        T[cj + "." + b.name] = cell_max[b.name];
      } else if (m >= 2) {
        const double p = powered ? ex[b.name] : 1.0;
        const double e = wsum > 0 ? std::pow(cell_wsum[b.name] / wsum, 1.0 / p) : kNaN;
        T[cj + "." + b.name] = e;
        T[cj + ".atommax." + b.name] = cell_max[b.name];
        double& agg = T["cell." + b.name];
        agg = std::isnan(agg) ? e : std::max(agg, e);
        cell_max_json[b.name] = cell_max[b.name];
      }
      cell_errs[b.name] = nan_to_null(T[cj + "." + b.name]);
    }
    cj_json["fitted_atoms"] = fitted;
    cj_json["errors"] = cell_errs;
    if (m >= 2) {
      cj_json["errors_are"] = "weighted power means (sum w |D|^p / sum w)^(1/p), p = the cell's exponents";
      cj_json["atom_max_errors"] = cell_max_json;
    }
    cj_json["atoms"] = atoms_json;
    cells_json.push_back(cj_json);
  }
  T["weights"] = W;
  T["singleton"] = S;
  T["multi"] = multi;
  L.total = W + S + multi;

  json rules = json::object();
  for (const auto& b : s.blocks) rules[b.name] = exponent_rule(s, b);
  json rbar = json::object();
  for (const auto& kv : opt.rbar) rbar[std::to_string(kv.first)] = kv.second;
  L.detail["cells"] = cells_json;
  L.detail["exponents"] = {{"row", s.row_name},
                           {"rules", rules},
                           {"rbar", rbar},
                           {"by_cell_size", exps},
                           {"applies_to", L.kind == "D2" ? "D2 cells of two or more fitted atoms; "
                                                           "singleton cells use exponent 1"
                                                         : "D1: every cell uses exponent 1"}};
  return L;
}

// Minimise f from x0 by Nelder-Mead (reflection 1, expansion 2, contraction 1/2,
// shrink 1/2), restarted from the best point until a restart no longer improves.
struct NelderMeadResult {
  arma::vec x;
  double f = kInf;
  int evaluations = 0, restarts = 0;
};

NelderMeadResult nelder_mead(const std::function<double(const arma::vec&)>& f, const arma::vec& x0,
                             const arma::vec& step, int max_evals, double ftol) {
  const std::size_t n = x0.n_elem;
  NelderMeadResult res;
  res.x = x0;
  res.f = f(x0);
  res.evaluations = 1;
  for (int restart = 0; restart < 10 && res.evaluations < max_evals; ++restart) {
    std::vector<arma::vec> P(n + 1, res.x);
    std::vector<double> F(n + 1, res.f);
    for (std::size_t u = 0; u < n; ++u) {
      P[u + 1][u] += step[u];
      F[u + 1] = f(P[u + 1]);
      ++res.evaluations;
    }
    while (res.evaluations < max_evals) {
      std::vector<std::size_t> idx(n + 1);
      for (std::size_t i = 0; i <= n; ++i) idx[i] = i;
      std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return F[a] < F[b]; });
      const std::size_t lo = idx[0], hi = idx[n], nh = idx[n - 1];
      double size = 0;
      for (std::size_t i = 0; i <= n; ++i) size = std::max(size, arma::abs(P[i] - P[lo]).max());
      if (F[hi] - F[lo] <= ftol * (std::abs(F[lo]) + 1e-300) && size <= 1e-12 * (1 + arma::abs(P[lo]).max()))
        break;
      if (size <= 1e-14 * (1 + arma::abs(P[lo]).max())) break;
      arma::vec c(n, arma::fill::zeros);
      for (std::size_t i = 0; i <= n; ++i)
        if (i != hi) c += P[i];
      c /= double(n);
      const arma::vec xr = c + (c - P[hi]);
      const double fr = f(xr);
      ++res.evaluations;
      if (fr < F[lo]) {
        const arma::vec xe = c + 2.0 * (c - P[hi]);
        const double fe = f(xe);
        ++res.evaluations;
        if (fe < fr) P[hi] = xe, F[hi] = fe;
        else P[hi] = xr, F[hi] = fr;
      } else if (fr < F[nh]) {
        P[hi] = xr, F[hi] = fr;
      } else {
        const bool outside = fr < F[hi];
        const arma::vec xc = outside ? arma::vec(c + 0.5 * (xr - c)) : arma::vec(c + 0.5 * (P[hi] - c));
        const double fc = f(xc);
        ++res.evaluations;
        if (fc < (outside ? fr : F[hi])) {
          P[hi] = xc, F[hi] = fc;
        } else {
          for (std::size_t i = 0; i <= n; ++i) {
            if (i == lo) continue;
            P[i] = P[lo] + 0.5 * (P[i] - P[lo]);
            F[i] = f(P[i]);
            ++res.evaluations;
          }
        }
      }
    }
    std::size_t best = 0;
    for (std::size_t i = 1; i <= n; ++i)
      if (F[i] < F[best]) best = i;
    const bool improved = F[best] < res.f - ftol * std::abs(res.f);
    if (F[best] < res.f) res.x = P[best], res.f = F[best];
    res.restarts = restart;
    if (!improved && restart > 0) break;
  }
  return res;
}

std::vector<FitAtom> shifted(const std::vector<FitAtom>& fit, double t0, const arma::vec& t1) {
  std::vector<FitAtom> out = fit;
  for (auto& f : out) {
    f.atom.beta0 += t0;
    if (!t1.is_empty()) f.atom.location += t1;
  }
  return out;
}

}  // namespace

void VoronoiOptions::validate() const {
  if (!design.empty() && design_mc < 1) fail("VoronoiOptions", "design_mc", "must be >= 1", design_mc);
  if (!(negligible_gate >= 0) || !(negligible_gate < 1))
    fail("VoronoiOptions", "negligible_gate", "must be in [0, 1)", negligible_gate);
  for (const auto& kv : rbar) {
    if (kv.first < 2)
      fail("VoronoiOptions", "rbar cell size", "must be >= 2", kv.first);
    if (!(kv.second > 0) || !std::isfinite(kv.second))
      fail("VoronoiOptions", "rbar(" + std::to_string(kv.first) + ")", "must be finite and > 0",
           kv.second);
  }
}

json VoronoiLoss::to_json() const {
  json j = detail;
  j["loss"] = total;
  j["kind"] = kind;
  j["convention"] = convention;
  json t = json::object();
  for (const auto& kv : terms) t[kv.first] = nan_to_null(kv.second);
  j["terms"] = t;
  return j;
}

VoronoiLoss voronoi_loss(const GaussianMoE& truth, const GaussianMoE& fit, const VoronoiOptions& opt) {
  opt.validate();
  const Setup s = make_setup(truth, fit);
  // Parameters compared in canonical form: equivalents(canonical(fit)) against
  // canonical(truth) (quotients out continuous symmetries such as relu's scaling).
  std::vector<Atom> T = truth.atoms();
  for (Atom& a : T) a.eta = truth.experts().canonical(a.eta);
  std::vector<FitAtom> F;
  for (Atom a : fit.atoms()) {
    a.eta = fit.experts().canonical(a.eta);
    F.push_back({a, fit.experts().equivalents(a.eta)});
  }
  if (!opt.design.empty()) {
    // Average gate weight of each fitted atom over the design (models.md 9.2).
    Rng rng(opt.design_seed);
    const arma::mat X = draw_design(opt.design, fit.dim(), opt.design_mc, rng);
    const arma::vec g = arma::mean(exp_entries(fit.log_weights(X)), 1);
    for (std::size_t i = 0; i < F.size(); ++i) F[i].gate_mean = g[i];
  }
  const std::size_t kt = T.size(), ref = kt - 1;
  const std::size_t d = truth.gate_dim();  // the gate locations' dimension

  json translation = json::object();
  if (s.shift == Shift::none) {
    translation["applied"] = "none: the gate (" + truth.gating().family() +
                             ") has no translation symmetry";
  } else {
    // Step 0: the truth relative to its last expert.
    const double r0 = T[ref].beta0;
    const arma::vec r1 = T[ref].location;
    for (auto& a : T) {
      a.beta0 -= r0;
      if (s.shift == Shift::full) a.location -= r1;
    }
    // Step 1: fitted atoms whose nearest true atom on (eta, nu) is the reference.
    auto dist_eta_nu = [&](const FitAtom& f, const Atom& t) {
      std::size_t e = 0;
      double d2 = eta_dist2(f.equivalents, t.eta, e);
      if (s.has_nu) d2 += (f.atom.nu - t.nu) * (f.atom.nu - t.nu);
      return d2;
    };
    std::vector<std::size_t> R;
    for (std::size_t i = 0; i < F.size(); ++i) {
      std::size_t best = 0;
      double bd = kInf;
      for (std::size_t j = 0; j < kt; ++j) {
        const double d2 = dist_eta_nu(F[i], T[j]);
        if (d2 < bd) bd = d2, best = j;
      }
      if (best == ref) R.push_back(i);
    }
    if (R.empty()) {
      std::size_t best = 0;
      double bd = kInf;
      for (std::size_t i = 0; i < F.size(); ++i) {
        const double d2 = dist_eta_nu(F[i], T[ref]);
        if (d2 < bd) bd = d2, best = i;
      }
      R.push_back(best);
    }
    // Step 2: shift the fit so that the atoms standing for the reference carry
    // total weight 1 and (full shift) a weighted mean location 0.
    arma::vec lw(R.size());
    for (std::size_t r = 0; r < R.size(); ++r) lw[r] = F[R[r]].atom.beta0;
    const double s0 = log_sum_exp(lw);
    arma::vec s1(d, arma::fill::zeros);
    if (s.shift == Shift::full)
      for (std::size_t r = 0; r < R.size(); ++r) s1 += std::exp(lw[r] - s0) * F[R[r]].atom.location;
    F = shifted(F, -s0, s.shift == Shift::full ? arma::vec(-s1) : arma::vec());
    json rj = json::array();
    for (std::size_t i : R) rj.push_back(i + 1);
    translation["reference_atoms"] = rj;
    translation["applied"] = s.shift == Shift::full ? "beta0 and " + truth.gating().location_name()
                                                    : std::string("beta0 only (the gate is not "
                                                                  "translation invariant in its location)");
    translation["fit_shift_beta0"] = 0.0 - s0;  // 0.0 - : no "-0"
    if (s.shift == Shift::full)
      translation["fit_shift_location"] = arma::conv_to<std::vector<double>>::from(arma::vec(0.0 - s1));
  }

  VoronoiLoss L = compute_loss(T, F, s, opt);
  L.convention = "reference-atoms";

  if (opt.infimum_translation) {
    L.convention = "infimum";
    const double def = L.total;
    translation["default_loss"] = def;
    if (s.shift == Shift::none) {
      translation["method"] = "none needed: no translation symmetry, the infimum is the default";
    } else {
      const std::size_t nt = s.shift == Shift::full ? d + 1 : 1;
      auto unpack = [&](const arma::vec& t, double& t0, arma::vec& t1) {
        t0 = t[0];
        t1 = nt > 1 ? arma::vec(t.tail(d)) : arma::vec();
      };
      // Cells are recomputed for every translation; a rbar error cannot arise
      // that the default did not raise (same cell sizes may differ: rethrow then).
      auto objective = [&](const arma::vec& t) {
        double t0;
        arma::vec t1;
        unpack(t, t0, t1);
        try {
          return compute_loss(T, shifted(F, t0, t1), s, opt).total;
        } catch (const InvalidArgument&) {
          return kInf;  // a translation that creates a cell without a known rbar
        }
      };
      arma::vec step(nt);
      step[0] = 0.5;
      for (std::size_t u = 1; u < nt; ++u) {
        double scale = 1;
        for (const auto& a : T) scale = std::max(scale, std::abs(a.location[u - 1]));
        step[u] = 0.1 * scale;
      }
      const int max_evals = 400 * int(nt + 1) * int(nt + 1);
      const auto nm = nelder_mead(objective, arma::zeros<arma::vec>(nt), step, max_evals, 1e-12);
      std::ostringstream how;
      how << "Nelder-Mead over (t0" << (nt > 1 ? ", t1" : "") << ") of the fit, started at the "
          << "default convention (t = 0) with steps 0.5 (t0) and 0.1 max(1, |location*|) (t1), "
          << "cells recomputed at every t, restarted until no improvement; the result is the "
          << "minimum with the default";
      translation["method"] = how.str();
      translation["evaluations"] = nm.evaluations;
      if (nm.f < def) {
        double t0;
        arma::vec t1;
        unpack(nm.x, t0, t1);
        L = compute_loss(T, shifted(F, t0, t1), s, opt);
        L.convention = "infimum";
        translation["t0"] = t0;
        if (nt > 1) translation["t1"] = arma::conv_to<std::vector<double>>::from(t1);
      } else {
        translation["t0"] = 0.0;
        if (nt > 1) translation["t1"] = std::vector<double>(d, 0.0);
      }
    }
  }

  L.detail["translation"] = translation;
  L.detail["k"] = F.size();
  L.detail["k_true"] = kt;
  L.detail["regime"] = F.size() > kt ? "over-fitted" : F.size() == kt ? "exact-fitted" : "under-fitted";
  json bl = json::array();
  for (const auto& b : s.blocks) bl.push_back(b.name);
  L.detail["blocks"] = bl;
  L.detail["notes"] = s.notes;
  return L;
}

}  // namespace moerate
