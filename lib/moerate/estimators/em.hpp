// moerate/estimators/em.hpp -- maximum likelihood by EM (models.md section 5.1).
//
// One EM iteration on a GaussianMoE:
//   E-step   R = responsibilities, in log space (log_joint minus its column log_sum_exp)
//   M-step   gating: Gating::m_step on R (Newton/IRLS for softmax; ascent otherwise),
//            experts: ExpertFamily::m_step with weights R_j (WLS or accepted LM steps),
//            variances nu_j = sum_i R_ij (y_i - h_ij)^2 / sum_i R_ij, floored at
//            variance_floor (reported in the result).
// Every part of the M-step raises Q, so the observed log-likelihood never
// decreases (up to round-off); the result records the whole trace and the
// largest decrease seen, so tests and users can check it.
//
// Acceleration (default): SQUAREM (Varadhan and Roland 2008, scheme S3) on
// the flat parameter vector. A cycle makes two EM steps theta1 = M(theta0),
// theta2 = M(theta1), extrapolates theta' = theta0 + 2a r + a^2 v with
// r = theta1 - theta0, v = theta2 - 2 theta1 + theta0, a = |r| / |v| clipped
// to [1, a_max] (a_max grows x4 after a full-length step that is kept), maps
// theta' once more and keeps whichever of M(theta') and theta2 has the larger
// log-likelihood: the log-likelihood never decreases. Over-fitted (singular)
// problems, where plain EM crawls, are where it matters (docs/estimators.md).
// squarem-newton (the default) adds trust-region Newton steps on the observed
// log-likelihood (estimators/newton_polish.hpp) where EM crawls: when a cycle
// changes l by less than abs_tol while the score statistic is still above
// score_tol, and on a schedule (polish_every: first after 10 EM steps, then every 10; the
// interval doubles each time a polish gains nothing). The polish keeps its
// trust region's radius from one call to the next and hands back to EM after a
// full Newton step that gains less than a third of EM's last cycle. EM's own
// stopping rule still decides convergence, after at least one more cycle.
// `iterations` counts EM steps (M-steps), three per SQUAREM cycle, so caps
// and comparisons with plain EM are in the same unit.
//
// Stopping (models.md 9.3): rules that do not loosen with n. The fit has
// converged when the absolute change of the log-likelihood over the last
// step (or cycle) is below abs_tol AND the score statistic lambda
// (estimators/certificate.hpp: the remaining Newton step in standard errors)
// is below score_tol. The literature's relative rule |dl| < tol |l| is kept as
// an option (tol > 0; stop reason converged_relative). A compact parameter
// space (bounds, model/bounds.hpp) is respected by projecting each M-step
// onto the box in a way that never lowers its objective.
//
// Non-convergence is a status, never an exception.
//
#pragma once

#include <armadillo>
#include <cstdint>
#include <string>
#include <vector>

#include "moerate/core/cancel.hpp"
#include "moerate/model/bounds.hpp"
#include "moerate/model/model.hpp"

namespace moerate {

enum class StopReason {
  converged,          // |change of l| < abs_tol and score statistic < score_tol
  converged_relative, // the literature's relative rule |dl| < tol |l| (only when tol > 0)
  max_iter,           // iteration cap reached
  stalled,            // no step improves l although the score criterion is not met
  non_finite,         // the log-likelihood became NaN/inf (degenerate start)
  not_run,            // no iteration was run (e.g. max_iter = 0)
  dominated,          // a start of a fit stopped early: far below another start and gaining too
                      // little to reach it (fit.hpp, prune_factor); never a fit's own stop reason
};
std::string stop_reason_name(StopReason r);

enum class Acceleration { none, squarem, squarem_newton };
std::string acceleration_name(Acceleration a);
Acceleration parse_acceleration(const std::string& text);  // "none" | "squarem" | "squarem-newton"

struct EMOptions {
  int max_iter = 10000;           // cap on EM steps (M-steps); see docs/estimators.md
  double abs_tol = 1e-6;          // |l_t - l_(t-1)| in nats (measured choice: docs/estimators.md)
  double score_tol = 1e-3;        // score statistic lambda, in standard errors of the estimate
  double tol = 0;                 // relative rule |dl| < tol |l| (literature 1e-6); 0 = off
  Acceleration accelerate = Acceleration::squarem_newton;
  int polish_every = 10;          // squarem-newton: the Newton polish's schedule, first after this
                                  // many EM steps, then every this many (doubling while it gains
                                  // nothing); 30 before round 16 (docs/performance.md)
  ParameterBounds bounds{};       // compact parameter space (default: none)
  double variance_floor = 1e-6;   // relative to var(y): nu_j >= floor * var(y)
  GateMStepOptions gate{};        // gating M-step (ridge 0 by default)
  ExpertMStepOptions expert{};    // expert M-step (LM steps for nonlinear experts)
  bool keep_trace = true;         // store the log-likelihood at every iteration
  CancelHook cancel{};            // polled every iteration (and by the other estimators); empty: never
  void validate() const;
};

struct EMResult {
  StopReason stop_reason = StopReason::not_run;
  int iterations = 0;             // EM steps (M-steps)
  int cycles = 0;                 // SQUAREM cycles (0 without acceleration)
  int extrapolations_kept = 0;    // cycles whose extrapolated point was kept
  int newton_steps = 0;           // Newton polish steps kept (squarem-newton)
  int newton_calls = 0;           // times the Newton polish ran
  int newton_trials = 0;          // trial points the polish evaluated (kept or rejected)
  std::int64_t newton_cpu_ns = 0; // thread CPU time in the polish; measured only with MOERATE_PROFILE
                                  // (core/profile.hpp), else 0
  double ll_change = arma::datum::nan;  // |l| change over the last step or cycle
  double score_norm = arma::datum::nan; // score statistic when last computed
  bool start_clamped = false;     // the start lay outside the bounds and was clamped
  double log_likelihood = -kInfDouble();
  std::vector<double> trace;      // log-likelihood after each iteration (index 0 = start)
  double max_decrease = 0;        // largest drop between iterations (>= 0; ~1e-12 is round-off)
  double variance_floor_abs = 0;  // the floor actually applied (absolute)
  int floored_variances = 0;      // how many variances sat on the floor at the end
  static constexpr double kInfDouble() { return __builtin_inf(); }
};

/// Run EM from the model's current parameters (updated in place).
EMResult run_em(GaussianMoE& model, const arma::mat& X, const arma::rowvec& y,
                const EMOptions& opt);

/// An EM run between calls of run_em_until: the result so far and the
/// acceleration's state (SQUAREM's step length, the Newton polish's schedule
/// and trust radius). Not the responsibilities: they are a function of the
/// model and are recomputed (memory: no k x n matrix per paused run).
struct EMRunState {
  EMResult res;                  // so far; the result once finished
  bool started = false, finished = false;
  double step_max = 1;
  int no_progress = 0, polish_interval = 0, next_polish = 0;
  bool polish_productive = true;
  double polish_radius = 1;
};

/// run_em in parts: runs until EM stops (returns true; state.res is the
/// result) or until at least pause_at EM steps are made, checked between
/// cycles (returns false). Called again with the same model, data, options
/// and state, the run continues in every bit as if it had not paused, so a
/// run paused at any steps ends with run_em's numbers (fit's pruning of
/// dominated starts, fit.hpp).
bool run_em_until(GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, const EMOptions& opt,
                  EMRunState& state, int pause_at);

}  // namespace moerate
