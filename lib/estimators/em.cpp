#include "moerate/estimators/em.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "moerate/core/error.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/core/parallel.hpp"
#include "moerate/core/profile.hpp"
#include "moerate/estimators/certificate.hpp"
#include "moerate/estimators/em_bernoulli.hpp"
#include "moerate/estimators/newton_polish.hpp"

namespace moerate {

std::string stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::converged: return "converged";
    case StopReason::converged_relative: return "converged_relative";
    case StopReason::max_iter: return "max_iter";
    case StopReason::stalled: return "stalled";
    case StopReason::non_finite: return "non_finite";
    case StopReason::not_run: return "not_run";
    case StopReason::dominated: return "dominated";
  }
  return "?";
}

std::string acceleration_name(Acceleration a) {
  switch (a) {
    case Acceleration::none: return "none";
    case Acceleration::squarem: return "squarem";
    case Acceleration::squarem_newton: return "squarem-newton";
  }
  return "?";
}

Acceleration parse_acceleration(const std::string& text) {
  if (text == "squarem-newton") return Acceleration::squarem_newton;
  if (text == "squarem") return Acceleration::squarem;
  if (text == "none") return Acceleration::none;
  throw InvalidArgument("--accelerate: expected squarem-newton, squarem or none; got '" + text + "'");
}

void EMOptions::validate() const {
  if (max_iter < 0) fail("EMOptions", "max_iter", "must be >= 0", max_iter);
  if (!(abs_tol >= 0) || !std::isfinite(abs_tol)) fail("EMOptions", "abs_tol", "must be finite and >= 0", abs_tol);
  if (!(score_tol > 0)) fail("EMOptions", "score_tol", "must be > 0", score_tol);
  if (!(tol >= 0) || !std::isfinite(tol)) fail("EMOptions", "tol", "must be finite and >= 0", tol);
  if (!(variance_floor > 0) || !std::isfinite(variance_floor))
    fail("EMOptions", "variance_floor", "must be finite and > 0", variance_floor);
  if (polish_every < 1) fail("EMOptions", "polish_every", "must be >= 1", polish_every);
  bounds.validate();
  gate.validate();
  expert.validate();
}

namespace {

/// Responsibilities and the log-likelihood at a model.
struct EmState {
  arma::mat R;  // k x n posterior probabilities of the experts
  double ll = -arma::datum::inf;
};

/// One pass over blocks of observations (in parallel, the same numbers for
/// every thread count): log joint densities, their log-sum-exp and the
/// responsibilities from the same exponentials. Only R (k x n) is stored; the
/// log-likelihood is summed per block, the blocks in order. R is written into
/// `buffer` (a released state's R: EM recycles one k x n matrix instead of
/// freeing and allocating one per evaluation, which fragments the heap).
EmState evaluate(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y, arma::mat buffer = {}) {
  EmState s;
  const std::size_t k = m.n_experts(), n = X.n_cols;
  s.R = std::move(buffer);
  s.R.set_size(k, n);
  s.ll = sum_over_blocks(n, [&](std::size_t a, std::size_t b, double* ll) {
    const std::size_t B = b - a;
    const arma::mat L = m.log_joint(column_view(X, a, b), row_view(y, a, b));  // views: no copy of the block
    arma::vec sum(B, arma::fill::none);
    // exp(L - max) straight into R's columns, the log-sum-exp into ll.
    log_sum_exp_block(L.memptr(), k, B, s.R.colptr(a), sum.memptr(), ll);
    for (std::size_t i = 0; i < B; ++i) {
      double* r = s.R.colptr(a + i);
      if (!std::isfinite(ll[i])) {  // no expert can explain y_i (l = -inf), or NaN
        for (std::size_t j = 0; j < k; ++j) r[j] = arma::datum::nan;
        continue;
      }
      for (std::size_t j = 0; j < k; ++j) r[j] /= sum[i];
    }
  });
  return s;
}

/// The box EM works in: the user's bounds, and log nu >= log(floor) always.
Box em_box(const GaussianMoE& m, const ParameterBounds& bounds, double nu_lo, double nu_hi) {
  ParameterBounds b = bounds;
  b.nu_min = nu_lo;
  b.nu_max = nu_hi;
  return b.box(m);
}

/// Projects a family M-step onto [lo, hi] without lowering its objective
/// (value(theta), to be maximised): the step truncated at the box and the
/// clamped step are tried, the better kept if it is not worse than `old`.
/// For a concave objective the truncated step is never worse than `old`.
template <class Value>
arma::vec project_step(const arma::vec& old, const arma::vec& proposed, const arma::vec& lo, const arma::vec& hi,
                       Value value) {
  Box b{lo, hi};
  if (b.contains(proposed)) return proposed;
  const double v_old = value(old);
  const arma::vec trunc = old + b.max_step(old, proposed) * (proposed - old);
  const arma::vec clamp = b.clamp(proposed);
  const double v_trunc = value(trunc), v_clamp = value(clamp);
  arma::vec best = old;
  double v_best = v_old;
  if (std::isfinite(v_trunc) && v_trunc >= v_best) best = trunc, v_best = v_trunc;
  if (std::isfinite(v_clamp) && v_clamp > v_best) best = clamp, v_best = v_clamp;
  return best;
}

/// One EM step from the model at state s (model updated in place). Xg and Xe
/// are the rows of X the gate and the experts read (model.gate_x / expert_x,
/// taken once per run; both are X itself for a shared design).
void em_step(GaussianMoE& model, const arma::mat& Xg, const arma::mat& Xe, const arma::rowvec& y, const EmState& s,
             const EMOptions& opt, const Box& box, double nu_lo, double nu_hi) {
  const arma::mat& R = s.R;
  const std::size_t k = model.n_experts(), pg = model.gating().n_params(), q = model.experts().n_params();
  // The experts' M-step as a plan whose passes over the data ride along with
  // the gate's (m_step_companion.hpp; families without a plan: m_step_all below).
  const arma::mat eta_old = model.eta();
  std::unique_ptr<ExpertMStepPlan> plan = model.experts().plan_m_step_all(Xe, y, R, model.eta(), opt.expert);
  // Gate.
  const arma::vec gate_old = model.gating().params();
  {
    GateMStepOptions go = opt.gate;
    if (!box.empty() && pg > 0) {
      go.lower = box.lower.head(pg);
      go.upper = box.upper.head(pg);
    }
    go.companion = plan.get();
    model.gating().m_step(Xg, R, go);
  }
  if (!box.empty() && pg > 0) {
    const arma::vec lo = box.lower.head(pg), hi = box.upper.head(pg);
    const arma::vec proposed = model.gating().params();
    if (!Box{lo, hi}.contains(proposed)) {
      Gating& g = model.gating();
      auto q_of = [&](const arma::vec& t) {
        try {
          g.set_params(t);
        } catch (const InvalidArgument&) {
          return -arma::datum::inf;
        }
        return g.q_value(Xg, R, opt.gate.ridge);
      };
      g.set_params(project_step(gate_old, proposed, lo, hi, q_of));
    }
  }
  // Experts and variances: all experts' M-steps at once (a family may share
  // its passes over the data among them: ExpertFamily::m_step_all).
  const ExpertMStepAll all = plan ? plan->finish() : model.experts().m_step_all(Xe, y, R, model.eta(), opt.expert);
  for (std::size_t j = 0; j < k; ++j) {
    const double wsum = all.weight[j];
    if (!(wsum > kEmptyExpertWeight)) continue;  // empty component: keep its expert
    double sse = all.results[j].sse_after;  // the weighted sum of squares at eta
    if (!box.empty()) {
      const std::size_t o = pg + j * q;
      const arma::vec lo = box.lower.subvec(o, o + q - 1), hi = box.upper.subvec(o, o + q - 1);
      const arma::vec proposed = model.eta().col(j);
      if (!Box{lo, hi}.contains(proposed)) {
        const arma::rowvec w = R.row(j);
        const arma::vec eta = project_step(eta_old.col(j), proposed, lo, hi,
                                           [&](const arma::vec& e) { return -model.experts().weighted_sse(Xe, y, w, e); });
        if (!arma::approx_equal(eta, proposed, "absdiff", 0.0)) sse = model.experts().weighted_sse(Xe, y, w, eta);
        model.eta().col(j) = eta;
      }
    }
    const double nu = sse / wsum;
    // Q is unimodal in nu: clamping the maximiser gives the constrained maximiser.
    model.nu()[j] = std::clamp(nu, nu_lo, nu_hi);
  }
}

}  // namespace

EMResult run_em(GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, const EMOptions& opt) {
  EMRunState state;
  run_em_until(model, X, y, opt, state, std::numeric_limits<int>::max());
  return std::move(state.res);
}

bool run_em_until(GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, const EMOptions& opt,
                  EMRunState& state, int pause_at) {
  if (state.finished) return true;
  opt.validate();
  if (model.kind() == ModelKind::bernoulli) {  // estimators/em_bernoulli: never pauses
    state.res = run_em_bernoulli(model, X, y, opt);
    state.started = state.finished = true;
    return true;
  }
  if (model.kind() != ModelKind::gaussian)
    throw InvalidArgument("run_em: EM needs a Gaussian MoE (\"model\": \"gaussian\"); use --estimator lse");
  if (X.n_cols != y.n_elem) throw InvalidArgument("run_em: X and y have different numbers of observations");
  if (X.n_rows != model.dim())
    fail("run_em", "data dimension", "must equal the model dimension " + std::to_string(model.dim()), X.n_rows);
  EMResult& res = state.res;
  const bool resumed = state.started;
  state.started = true;
  const std::size_t k = model.n_experts();
  const double var_y = y.n_elem > 1 ? arma::var(y) : 1.0;
  res.variance_floor_abs = opt.variance_floor * (var_y > 0 ? var_y : 1.0);
  const double nu_lo = std::max(res.variance_floor_abs, opt.bounds.nu_min), nu_hi = opt.bounds.nu_max;
  if (nu_lo > nu_hi)
    throw InvalidArgument("run_em: the variance floor " + to_text(res.variance_floor_abs) + " exceeds --nu-max " +
                          to_text(nu_hi));
  // A feasible start: variances floored (an unfloored start would let the
  // first M-step lower the log-likelihood) and parameters inside the box.
  const Box box = em_box(model, opt.bounds, nu_lo, nu_hi);
  if (!resumed) {
    const arma::vec theta = model.flat_params();
    if (!box.contains(theta)) {
      res.start_clamped = arma::any(theta.head(theta.n_elem - k) < box.lower.head(theta.n_elem - k)) ||
                          arma::any(theta.head(theta.n_elem - k) > box.upper.head(theta.n_elem - k));
      model.set_flat_params(box.clamp(theta));
    }
  }
  const Box user_box = opt.bounds.any() ? box : Box{};  // for the score statistic's active set
  const Covariates::Rows xg = model.gate_x(X), xe = model.expert_x(X);  // X itself when shared

  // A resumed run's state is its model's: evaluate() is a function of the
  // model alone, so the run continues with the same numbers.
  EmState s = evaluate(model, X, y);
  if (!resumed) {
    res.log_likelihood = s.ll;
    if (opt.keep_trace) res.trace.push_back(s.ll);
    if (!std::isfinite(s.ll)) {
      res.stop_reason = StopReason::non_finite;
      state.finished = true;
      return true;
    }
    state.polish_interval = state.next_polish = opt.polish_every;
  }
  double& step_max = state.step_max;  // SQUAREM: largest extrapolation length a
  constexpr double kStepFactor = 4;   // Varadhan and Roland's default mstep
  int& no_progress = state.no_progress;
  // Newton polish schedule (squarem-newton): see em.hpp.
  const bool newton = opt.accelerate == Acceleration::squarem_newton;
  int& polish_interval = state.polish_interval;
  int& next_polish = state.next_polish;
  bool& polish_productive = state.polish_productive;
  PolishOptions polish;  // the trust region's radius carries over from one polish to the next
  polish.initial_radius = state.polish_radius;
  while (true) {
    throw_if_cancelled(opt.cancel);
    if (res.iterations >= opt.max_iter) {
      res.stop_reason = res.iterations == 0 ? StopReason::not_run : StopReason::max_iter;
      break;
    }
    if (res.iterations >= pause_at) {  // between cycles: the run continues from here in every bit
      state.polish_radius = polish.initial_radius;
      return false;
    }
    const double ll_prev = s.ll;
    const GaussianMoE previous = model;
    const bool squarem = opt.accelerate != Acceleration::none && res.iterations + 3 <= opt.max_iter;
    // One EM step from the model at `from`; false (model restored to the last
    // finite parameters) when the log-likelihood becomes non-finite. from.R is
    // released once the M-step has read it (memory: one k x n responsibility
    // matrix at a time, besides the gate's weights inside the M-step).
    auto step = [&](EmState& from, EmState& to) {
      em_step(model, xg.mat(), xe.mat(), y, from, opt, box, nu_lo, nu_hi);
      res.iterations++;
      to = evaluate(model, X, y, std::move(from.R));
      if (std::isfinite(to.ll)) return true;
      model = previous;
      res.stop_reason = StopReason::non_finite;
      return false;
    };
    if (!squarem) {
      EmState s1;
      if (!step(s, s1)) break;
      s = std::move(s1);
    } else {
      res.cycles++;
      const arma::vec theta0 = model.flat_params();
      EmState s1, s2;
      if (!step(s, s1)) break;
      const arma::vec theta1 = model.flat_params();
      if (!step(s1, s2)) break;
      const arma::vec theta2 = model.flat_params();
      const arma::vec r = theta1 - theta0, v = theta2 - 2 * theta1 + theta0;
      const double nr = arma::norm(r), nv = arma::norm(v);
      s = std::move(s2);
      if (nv > 0 && std::isfinite(nr) && std::isfinite(nv)) {
        const double a = std::clamp(nr / nv, 1.0, step_max);
        const arma::vec theta_x = box.clamp(theta0 + 2 * a * r + a * a * v);
        GaussianMoE cand = model;
        bool kept = false;
        arma::mat spare = std::move(s.R);  // s.R is recomputed below if the extrapolation is not kept
        try {
          cand.set_flat_params(theta_x);
          EmState sx = evaluate(cand, X, y, std::move(spare));
          if (std::isfinite(sx.ll)) {
            em_step(cand, xg.mat(), xe.mat(), y, sx, opt, box, nu_lo, nu_hi);
            res.iterations++;
            EmState sxx = evaluate(cand, X, y, std::move(sx.R));
            if (std::isfinite(sxx.ll) && sxx.ll >= s.ll) {
              model = std::move(cand);
              s = std::move(sxx);
              kept = true;
            } else {
              spare = std::move(sxx.R);
            }
          } else {
            spare = std::move(sx.R);
          }
        } catch (const InvalidArgument&) {
          // An extrapolated point outside a family's domain: keep theta2.
        }
        if (!kept) s = evaluate(model, X, y, std::move(spare));  // theta2's state again: the same numbers
        if (kept) {
          res.extrapolations_kept++;
          if (a >= step_max) step_max *= kStepFactor;
        } else {
          step_max = std::max(1.0, step_max / kStepFactor);
        }
      }
    }
    res.max_decrease = std::max(res.max_decrease, ll_prev - s.ll);
    res.log_likelihood = s.ll;
    if (opt.keep_trace) res.trace.push_back(s.ll);
    const double change = s.ll - ll_prev;
    res.ll_change = std::abs(change);
    if (opt.tol > 0 && std::abs(change) < opt.tol * std::max(std::abs(ll_prev), 1e-300)) {
      res.stop_reason = StopReason::converged_relative;
      break;
    }
    bool crawling = false;
    if (std::abs(change) < opt.abs_tol) {
      res.score_norm = score_statistic(model, X, y, s.R, user_box);
      if (res.score_norm < opt.score_tol) {
        res.stop_reason = StopReason::converged;
        break;
      }
      crawling = true;
    }
    if (newton && (res.iterations >= next_polish || (crawling && polish_productive))) {
      s.R.reset();  // memory: the polish evaluates its own R; s is re-evaluated below
      polish.min_gain = std::max(change, 0.0) / 3;  // EM's gain per step in the last cycle
      const std::int64_t polish_t0 = profile::enabled() ? profile::thread_cpu_ns() : 0;
      const PolishResult pr = newton_polish(model, X, y, box, s.ll, polish);
      if (profile::enabled()) res.newton_cpu_ns += profile::thread_cpu_ns() - polish_t0;
      if (pr.radius > 0) polish.initial_radius = pr.radius;
      res.newton_calls++;
      res.newton_steps += pr.steps;
      res.newton_trials += pr.trials;
      polish_productive = pr.steps > 0;
      if (!polish_productive) polish_interval *= 2;
      next_polish = res.iterations + polish_interval;
      s = evaluate(model, X, y);  // without steps the model is unchanged: the same numbers
      if (pr.steps > 0) {
        res.log_likelihood = s.ll;
        if (opt.keep_trace) res.trace.push_back(s.ll);
        continue;  // EM's stopping rule decides, after one more cycle
      }
    }
    if (crawling) {
      // No step moves l at all while the score says the optimum is not
      // reached (e.g. every M-step rejected): stop and say so.
      no_progress = change <= 0 ? no_progress + 1 : 0;
      if (no_progress >= 5) {
        res.stop_reason = StopReason::stalled;
        break;
      }
    }
  }
  for (std::size_t j = 0; j < k; ++j)
    if (model.nu()[j] <= res.variance_floor_abs * (1 + 1e-12)) res.floored_variances++;
  state.finished = true;
  return true;
}

}  // namespace moerate
