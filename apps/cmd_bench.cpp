// moerate bench: time EM iterations for given n, d, k and expert family.
#include <chrono>
#include <climits>
#include <iomanip>
#include <iostream>

#include "cli_common.hpp"
#include "moerate/core/error.hpp"
#include "moerate/estimators/em.hpp"
#include "moerate/estimators/fit.hpp"

void add_bench_command(CLI::App& app) {
  struct Opts {
    std::size_t n = 100000, d = 1, k = 2;
    std::string expert = "linear", gating = "softmax";
    int iters = 20, gate_steps = 20;
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
  cmd->add_option("--gate-steps", o->gate_steps, "Newton steps per gating M-step")->capture_default_str()->check(moerate::cli::whole(0, 100000));
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
    eo.gate.max_steps = o->gate_steps;
    const auto t0 = clock::now();
    const auto r = moerate::run_em(m, X, y, eo);
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    const double per_iter = s / std::max(1, r.iterations);
    std::cout << std::setprecision(4);
    std::cout << "bench: n = " << o->n << ", d = " << o->d << ", k = " << o->k << ", expert " << o->expert
              << ", gating " << o->gating << ", " << r.iterations << " EM iterations (1 thread)\n";
    std::cout << "  time per iteration      " << per_iter * 1e3 << " ms\n";
    std::cout << "  time per observation    " << per_iter / o->n * 1e9 << " ns per iteration\n";
    std::cout << "  log-likelihood          " << std::setprecision(10) << r.log_likelihood << "\n";
  });
}
