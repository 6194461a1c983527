// moerate bench: time EM iterations for given n, d, k and expert family.
#include <time.h>

#include <chrono>
#include <vector>
#include <climits>
#include <iomanip>
#include <iostream>

#include "cli_common.hpp"
#include "moerate/core/error.hpp"
#include "moerate/estimators/em.hpp"
#include "moerate/estimators/inference.hpp"
#include "moerate/estimators/fit.hpp"

namespace {

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

/// What one EM iteration cannot avoid, written plainly in one pass over the
/// data: read x_i, the k gate scores, their log-sum-exp (k exp, 1 log), the
/// multiply-adds of the gate's Hessian (upper triangle of z z^T, z = p (x) v,
/// v = (1, x_i), experts 1..k-1) and of the experts' normal equations (upper
/// triangles of w_ij u u^T, u = (x_i, 1), and w_ij y_i u). Returns a checksum
/// so that nothing is optimised away.
double bound_kernel(const arma::mat& X, const arma::rowvec& y, const moerate::GaussianMoE& m, std::size_t k) {
  const std::size_t d = X.n_rows, n = X.n_cols, q = d + 1, pz = (k - 1) * q;
  arma::mat B(q, k);  // gate coefficients (beta0; beta1) per expert
  for (std::size_t j = 0; j < k; ++j) {
    B(0, j) = m.gating().atom_log_weight(j);
    const arma::vec loc = m.gating().atom_location(j);
    for (std::size_t u = 0; u < d && u < loc.n_elem; ++u) B(1 + u, j) = loc[u];
  }
  std::vector<double> H(pz * pz, 0.0), A(k * q * q, 0.0), b(k * q, 0.0), v(q), p(k), z(pz);
  double ll = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double* x = X.colptr(i);
    v[0] = 1;
    for (std::size_t u = 0; u < d; ++u) v[1 + u] = x[u];
    double mx = -1e300;
    for (std::size_t j = 0; j < k; ++j) {
      double sc = 0;
      for (std::size_t u = 0; u < q; ++u) sc += B(u, j) * v[u];
      p[j] = sc;
      mx = std::max(mx, sc);
    }
    double sum = 0;
    for (std::size_t j = 0; j < k; ++j) sum += (p[j] = std::exp(p[j] - mx));
    ll += mx + std::log(sum);
    for (std::size_t j = 0; j < k; ++j) p[j] /= sum;
    for (std::size_t j = 0; j + 1 < k; ++j)
      for (std::size_t u = 0; u < q; ++u) z[j * q + u] = p[j] * v[u];
    for (std::size_t r = 0; r < pz; ++r)
      for (std::size_t c = r; c < pz; ++c) H[r * pz + c] += z[r] * z[c];
    // u = (x, 1): the same entries as v, reordered; the order does not change the work.
    for (std::size_t j = 0; j < k; ++j)
      for (std::size_t r = 0; r < q; ++r) {
        const double wr = p[j] * v[r];
        b[j * q + r] += wr * y[i];
        for (std::size_t c = r; c < q; ++c) A[(j * q + r) * q + c] += wr * v[c];
      }
  }
  double check = ll;
  for (double h : H) check += 1e-12 * h;
  for (double a : A) check += 1e-12 * a;
  for (double c : b) check += 1e-12 * c;
  return check;
}

}  // namespace

void add_bench_command(CLI::App& app) {
  struct Opts {
    std::size_t n = 100000, d = 1, k = 2;
    std::string expert = "linear", gating = "softmax";
    int iters = 20, gate_steps = moerate::GateMStepOptions{}.max_steps;
    std::uint64_t seed = 1;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("bench", "Time EM iterations (per iteration and per observation)");
  cmd->add_option("--n", o->n, "Observations")->capture_default_str()->check(moerate::cli::whole(1, LLONG_MAX));
  cmd->add_option("--d", o->d, "Covariate dimension")->capture_default_str()->check(moerate::cli::whole(1, 10000));
  cmd->add_option("--k", o->k, "Experts")->capture_default_str()->check(moerate::cli::whole(1, 1000));
  cmd->add_option("--expert", o->expert, "Expert family")->capture_default_str();
  cmd->add_option("--gating", o->gating, "Gating family")->capture_default_str();
  cmd->add_option("--iters", o->iters, "EM iterations to time")->capture_default_str()->check(moerate::cli::whole(1, 1000000));
  moerate::cli::add_seed_option(cmd, o->seed, "Random seed");
  cmd->add_option("--gate-steps", o->gate_steps, "Steps per gate M-step (0 = the family's default, as in fit)")->capture_default_str()->check(moerate::cli::whole(0, 100000));
  moerate::cli::set_example(cmd, "moerate bench --n 1000000 --d 8 --k 4 --expert linear --iters 10");
  cmd->callback([o]() {
    moerate::cli::configure_threads(1);
    try {
      moerate::check_problem_size("bench --n/--d", o->n, o->d);
    } catch (const std::exception& e) {
      throw moerate::cli::UsageError(e.what());
    }
    moerate::cli::check_range("--k", double(o->k), 1, 1000);
    moerate::cli::check_range("--iters", o->iters, 1, 1000000);
    moerate::cli::check_range("--gate-steps", o->gate_steps, 0, 100000);
    if (double(o->n) * double(o->k) > 1e9)
      throw moerate::cli::UsageError("bench: n x k = " + std::to_string(o->n * o->k) + " would take at least " +
                                     moerate::format_bytes((long double)o->n * o->k * 8 * 4) + " of memory; the maximum is 1e9");
    using clock = std::chrono::steady_clock;
    moerate::Rng rng(o->seed);
    // A random true model with well separated experts; data drawn from it.
    std::unique_ptr<moerate::Gating> gating;
    std::shared_ptr<moerate::ExpertFamily> family;
    try {
      gating = moerate::make_gating(moerate::parse_family_spec(o->gating), o->k, o->d);
      family = moerate::make_expert_family(moerate::parse_family_spec(o->expert), o->d);
    } catch (const moerate::InvalidArgument& e) {
      throw moerate::cli::UsageError(e.what());
    }
    arma::vec gp(gating->n_params());
    for (auto& v : gp) v = rng.normal(0, 1);
    gating->set_params(gp);
    arma::mat eta(family->n_params(), o->k);
    for (auto& v : eta) v = rng.normal(0, 2);
    arma::vec nu(o->k, arma::fill::value(0.25));
    moerate::GaussianMoE truth(std::move(gating), family, eta, nu);
    arma::mat X(o->d, o->n);
    for (auto& v : X) v = rng.normal();
    const arma::rowvec y = truth.simulate(X, rng);
    moerate::GaussianMoE m = truth;
    m.eta() += 0.3;
    moerate::EMOptions eo;
    eo.max_iter = o->iters;
    eo.tol = 0;
    eo.abs_tol = 0;  // run exactly --iters plain EM steps
    eo.accelerate = moerate::Acceleration::none;
    eo.gate.max_steps = o->gate_steps;
    const double c0 = cpu_seconds();
    const auto t0 = clock::now();
    const auto r = moerate::run_em(m, X, y, eo);
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    const double cpu = cpu_seconds() - c0;
    const double per_iter = s / std::max(1, r.iterations), cpu_iter = cpu / std::max(1, r.iterations);
    // The bound: one plain pass doing the least any EM iteration must do.
    const double b0 = cpu_seconds();
    const double check = bound_kernel(X, y, m, o->k);
    const double bound = cpu_seconds() - b0;
    // A Newton step's pass (score and Hessian of the log-likelihood, what the
    // polish of squarem-newton builds each step), at the same model.
    constexpr int kNewtonReps = 5;
    const double h0 = cpu_seconds();
    double hcheck = 0;
    for (int rep = 0; rep < kNewtonReps; ++rep) hcheck += moerate::loglik_score_hessian(m, X, y).H(0, 0);
    const double newton = (cpu_seconds() - h0) / kNewtonReps;
    std::cout << std::setprecision(4);
    std::cout << "bench: n = " << o->n << ", d = " << o->d << ", k = " << o->k << ", expert " << o->expert
              << ", gating " << o->gating << ", " << r.iterations << " EM iterations (1 thread)\n";
    std::cout << "  time per iteration      " << per_iter * 1e3 << " ms (" << cpu_iter * 1e3 << " ms CPU)\n";
    std::cout << "  time per observation    " << per_iter / o->n * 1e9 << " ns per iteration (" << cpu_iter / o->n * 1e9
              << " ns CPU)\n";
    std::cout << "  log-likelihood          " << std::setprecision(10) << r.log_likelihood << std::setprecision(4) << "\n";
    std::cout << "  bound kernel            " << bound * 1e3 << " ms CPU (one pass: k scores, log-sum-exp, gate Hessian "
              << "and normal-equation multiply-adds; checksum " << check << ")\n";
    std::cout << "  ratio to the bound      " << cpu_iter / bound << " (EM iteration CPU / bound CPU)\n";
    std::cout << "  score and Hessian       " << newton * 1e3 << " ms CPU (" << newton / o->n * 1e9
              << " ns per observation; a Newton step's pass, " << newton / cpu_iter << " EM iterations; checksum "
              << hcheck / kNewtonReps << ")\n";
  });
}
