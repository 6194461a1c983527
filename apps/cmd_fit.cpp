// moerate fit: estimate a mixture of experts from data (EM with restarts by default).
#include <iomanip>
#include <iostream>

#include "cli_common.hpp"
#include "moerate/io/csv.hpp"
#include "moerate/estimators/fit.hpp"
#include "moerate/model/response.hpp"
#include "moerate/estimators/inference.hpp"
#include "moerate/io/files.hpp"

namespace {

void print_model(std::ostream& os, const moerate::GaussianMoE& m) {
  os << "  gating " << m.gating().family_json().dump() << ", experts " << m.experts().family_json().dump() << "\n";
  for (std::size_t j = 0; j < m.n_experts(); ++j) {
    os << "  " << std::setw(3) << j + 1 << "  gate " << m.gating().gate_json(j).dump()
       << "  expert " << m.experts().to_json(m.eta().col(j)).dump();
    if (m.kind() == moerate::ModelKind::gaussian) os << "  variance " << m.nu()[j];
    os << "\n";
  }
}

}  // namespace

void add_fit_command(CLI::App& app) {
  struct Opts {
    std::string data, out, y, se_csv, expert = "linear", gating = "softmax", estimator = "em", init = "kmeans";
    std::vector<std::string> x, gate_x;
    std::size_t k = 0;
    int starts = 10, threads = 0;
    double prune_factor = moerate::FitOptions{}.prune_factor;
    moerate::cli::EmCliOptions em;
    std::string response = "gaussian";
    moerate::ParameterBounds bounds;
    std::uint64_t seed = 1;
    bool quiet = false;
    bool se = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("fit", "Fit a mixture of experts to data (EM, restarts, several initialisations)");
  cmd->add_option("--data", o->data, "Data CSV with a header")->required();
  cmd->add_option("--experts,-k", o->k, "Number of experts k")->required()->check(moerate::cli::whole(1, 1000));
  cmd->add_option("--expert", o->expert, "Expert family: linear | ffn:ACT (ACT = sigmoid, tanh, gelu, relu) | see 'moerate list'")
      ->capture_default_str();
  cmd->add_option("--response", o->response,
                  "Response distribution: gaussian (experts N(h, nu)) | bernoulli (y in {0, 1}, experts Bern(sigmoid(h)))")
      ->capture_default_str();
  cmd->add_option("--gating", o->gating, "Gating family (see 'moerate list')")->capture_default_str();
  cmd->add_option("--estimator", o->estimator, "Estimator: em | see 'moerate list'")->capture_default_str();
  cmd->add_option("--starts", o->starts, "Number of starts; the best log-likelihood is kept")
      ->capture_default_str()->check(moerate::cli::whole(1, 100000));
  moerate::cli::add_seed_option(cmd, o->seed, "Random seed (echoed in the output)");
  cmd->add_option("--init", o->init, "Initialisation: random | kmeans | split | model:FILE | near-truth:TRUTH.json | a cycle such as kmeans+split")
      ->capture_default_str();
  moerate::cli::add_em_options(cmd, o->em);
  moerate::cli::add_prune_option(cmd, o->prune_factor);
  cmd->add_option("--bound-gate-intercept", o->bounds.gate_intercept, "Compact parameter space: |beta0| <= this");
  cmd->add_option("--bound-gate-slope", o->bounds.gate_slope, "|beta1| (or Laplace |w|) <= this, per coordinate");
  cmd->add_option("--bound-expert", o->bounds.expert, "|expert parameter| <= this, per coordinate");
  cmd->add_option("--nu-min", o->bounds.nu_min, "Variances >= this (besides the floor)");
  cmd->add_option("--nu-max", o->bounds.nu_max, "Variances <= this");
  cmd->add_option("--threads", o->threads, "Threads for parallel starts (0 = all cores); results do not depend on it")
      ->capture_default_str();
  cmd->add_option("--y", o->y, "Response column (default y)");
  cmd->add_option("--x", o->x, "Covariate columns (default: all others)")->delimiter(',');
  auto* gate_x_opt = moerate::cli::add_gate_x_option(cmd, o->gate_x);
  cmd->add_option("--out", o->out, "Output: the fitted model file plus fit information (JSON)")->required();
  cmd->add_flag("--quiet", o->quiet, "Print only the one-line result");
  cmd->add_flag("--se", o->se,
                "Standard errors (observed information and sandwich) with Wald intervals: adds \"standard_errors\" to the output");
  cmd->add_option("--se-csv", o->se_csv,
                  "Also write the coefficient table (estimate, se, z, p-value, Wald interval) as CSV here (implies --se)");
  moerate::cli::set_example(cmd, "moerate fit --data data/tone.csv --experts 2 --starts 10 --seed 1 --out tone-fit.json");
  cmd->callback([o, gate_x_opt]() {
    o->threads = moerate::cli::configure_threads(o->threads);
    moerate::cli::check_out(o->out, {o->data});
    if (!o->se_csv.empty()) {
      moerate::cli::check_out(o->se_csv, {o->data, o->out}, "--se-csv");
      o->se = true;
    }
    moerate::cli::check_range("--experts", double(o->k), 1, 1000);
    moerate::cli::check_range("--starts", o->starts, 1, 100000);
    moerate::FitOptions fo;
    moerate::cli::apply_em_options(o->em, fo.em);
    fo.n_experts = o->k;
    try {
      fo.expert = moerate::parse_family_spec(o->expert);
      fo.gating = moerate::parse_family_spec(o->gating);
      fo.init = moerate::InitSpec::parse(o->init);
    } catch (const std::exception& e) {
      throw moerate::cli::UsageError(e.what());
    }
    fo.estimator = o->estimator;
    if (o->response != "gaussian" && o->response != "bernoulli")
      throw moerate::cli::UsageError("--response: expected gaussian or bernoulli; got '" + o->response + "'");
    fo.response = moerate::parse_model_kind(o->response);
    fo.n_starts = o->starts;
    fo.prune_factor = o->prune_factor;
    fo.seed = o->seed;
    fo.threads = o->threads;
    fo.em.bounds = o->bounds;
    try {
      fo.validate();
      moerate::make_gating(fo.gating, fo.n_experts, 1);
      moerate::make_expert_family(fo.expert, 1);
    } catch (const std::exception& e) {
      throw moerate::cli::UsageError(e.what());
    }
    const auto DD = moerate::cli::read_design_data(o->data, o->x, gate_x_opt->count() > 0, o->gate_x, o->y);
    const auto& D = DD.data;
    fo.covariates = DD.covariates;
    if (fo.response == moerate::ModelKind::bernoulli) moerate::check_binary_response(D.y, D.source, D.lines);
    if (D.n_obs() < o->k)
      throw std::runtime_error(o->data + ": k = " + std::to_string(o->k) + " experts need at least k observations; the file has n = " +
                               std::to_string(D.n_obs()));
    const auto r = moerate::fit(D.X, D.y, fo);
    moerate::json j = r.to_json();
    j["fit"]["data"] = o->data;
    j["fit"]["seed"] = o->seed;
    j["fit"]["init"] = fo.init.label();
    j["fit"]["x_columns"] = DD.x_columns;
    j["fit"]["gate_x_columns"] = DD.gate_x_columns;
    j["fit"]["y_column"] = D.y_name;
    j["fit"]["max_iter"] = o->em.max_iter;
    j["fit"]["tol"] = o->em.tol;
    j["fit"]["abs_tol"] = o->em.abs_tol;
    j["fit"]["score_tol"] = o->em.score_tol;
    j["fit"]["accelerate"] = o->em.accelerate;
    j["fit"]["polish_every"] = o->em.polish_every;
    j["fit"]["bounds"] = o->bounds.to_json();
    j["fit"]["ridge"] = o->em.ridge;
    std::string se_table, se_csv_text;
    if (o->se) {
      if (r.model.kind() != moerate::ModelKind::gaussian)
        throw moerate::cli::UsageError("--se needs a Gaussian MoE fit (the regression model has no likelihood)");
      const auto se = moerate::standard_errors(r.model, D.X, D.y);
      j["standard_errors"] = se.to_json();
      se_table = se.table();
      se_csv_text = se.coefficients_csv();
    }
    if (!o->se_csv.empty()) moerate::write_file_atomic(o->se_csv, se_csv_text);
    moerate::write_json_file(o->out, j);
    std::cout << std::setprecision(8);
    std::cout << "fit " << o->data << ": n = " << D.n_obs() << ", d = " << D.dim() << ", k = " << o->k << ", estimator "
              << r.estimator << ", init " << fo.init.label() << ", " << o->starts << " starts, seed " << o->seed << "\n";
    if (!fo.covariates.shared()) std::cout << "covariates: " << fo.covariates.describe() << "\n";
    std::cout << "log-likelihood " << r.log_likelihood << "  AIC " << r.aic << "  BIC " << r.bic << "  ("
              << r.n_params << " parameters)\n";
    const auto& cert = r.certificate;
    std::cout << "best start " << r.best_start << ": " << r.iterations << " EM steps, stopped: "
              << moerate::stop_reason_name(r.stop_reason) << "; last change " << cert.ll_change << ", score statistic "
              << cert.score_norm << " (tol " << cert.score_tol << "): "
              << (cert.certified ? "certified" : "NOT certified") << "\n";
    for (const auto& w : cert.warnings) std::cout << "warning: " << w << "\n";
    if (!o->quiet) {
      print_model(std::cout, r.model);
      int conv = 0, dominated = 0;
      for (const auto& s : r.starts) {
        conv += s.stop_reason == moerate::StopReason::converged || s.stop_reason == moerate::StopReason::converged_relative;
        dominated += s.stop_reason == moerate::StopReason::dominated;
      }
      const double best = r.log_likelihood;
      int at_best = 0;
      for (const auto& s : r.starts) at_best += std::abs(s.objective - best) <= 1e-6 * std::abs(best) + 1e-6;
      std::cout << "starts: " << conv << "/" << r.starts.size() << " converged, ";
      if (dominated > 0) std::cout << dominated << "/" << r.starts.size() << " stopped early as dominated, ";
      std::cout << at_best << "/"
                << r.starts.size() << " reached the best log-likelihood";
      std::string same;
      for (const auto& s : r.starts)
        if (s.same_as >= 0) same += (same.empty() ? "" : ", ") + std::to_string(s.index) + " = " + std::to_string(s.same_as);
      if (!same.empty()) std::cout << " (the same start in every bit, run once: start " << same << ")";
      std::cout << "\n";
    }
    if (o->se) std::cout << se_table;
    std::cout << "wrote " << o->out;
    if (!o->se_csv.empty()) std::cout << ", " << o->se_csv;
    std::cout << " (" << r.seconds << " s)\n";
  });
}
