// moerate bootstrap: nonparametric bootstrap intervals for a fitted model.
#include <iostream>

#include "cli_common.hpp"
#include "moerate/io/csv.hpp"
#include "moerate/estimators/inference.hpp"
#include "moerate/io/files.hpp"

void add_bootstrap_command(CLI::App& app) {
  struct Opts {
    std::string data, model, out, y, estimator = "em";
    std::vector<std::string> x, gate_x;
    int replicates = 200, threads = 0, starts = 2;
    double level = 0.95;
    moerate::cli::EmCliOptions em;  // the refits stop as fit does (certified), unless told otherwise
    std::uint64_t seed = 1;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "bootstrap", "Nonparametric bootstrap: refit resampled data, percentile intervals for every parameter");
  cmd->add_option("--data", o->data, "Data CSV with a header (the data the model was fitted to)")->required();
  cmd->add_option("--model", o->model, "Fitted model file (JSON): the start of every refit and the labels")->required();
  cmd->add_option("--replicates,-R", o->replicates, "Number of bootstrap replicates")
      ->capture_default_str()->check(moerate::cli::whole(1, 1000000));
  moerate::cli::add_seed_option(cmd, o->seed, "Random seed (echoed; replicate b uses a seed derived from (seed, b))");
  cmd->add_option("--threads", o->threads, "Threads (0 = all cores); results do not depend on it")->capture_default_str();
  cmd->add_option("--level", o->level, "Interval level")->capture_default_str()->check(CLI::Range(0.5, 0.9999));
  cmd->add_option("--starts", o->starts, "k-means starts per replicate besides the model start")->capture_default_str()->check(moerate::cli::whole(0, 100000));
  cmd->add_option("--estimator", o->estimator, "Estimator (see 'moerate list')")->capture_default_str();
  moerate::cli::add_em_options(cmd, o->em);
  cmd->add_option("--y", o->y, "Response column (default y)");
  cmd->add_option("--x", o->x, "Covariate columns (default: the model's recorded columns, else all others)")->delimiter(',');
  auto* gate_x_opt = moerate::cli::add_gate_x_option(cmd, o->gate_x);
  cmd->add_option("--out", o->out, "Output JSON: intervals per parameter and every replicate's draws")->required();
  cmd->add_flag("--quiet", o->quiet, "No progress on stderr");
  moerate::cli::set_example(cmd,
                            "moerate bootstrap --data tone.csv --model tone-fit.json --replicates 200 --seed 1 "
                            "--threads 4 --out tone-boot.json");
  cmd->callback([o, gate_x_opt]() {
    o->threads = moerate::cli::configure_threads(o->threads);
    moerate::cli::check_out(o->out, {o->data, o->model});
    moerate::cli::check_range("--replicates", o->replicates, 1, 1000000);
    moerate::cli::check_range("--starts", o->starts, 0, 100000);
    moerate::BootstrapOptions bo;
    bo.replicates = o->replicates;
    bo.seed = o->seed;
    bo.threads = o->threads;
    bo.level = o->level;
    bo.kmeans_starts = o->starts;
    bo.estimator = o->estimator;
    moerate::cli::apply_em_options(o->em, bo.em);
    try {
      bo.validate();
    } catch (const std::exception& e) {
      throw moerate::cli::UsageError(e.what());
    }
    const auto j_model = moerate::read_json_file(o->model);
    const auto model = moerate::GaussianMoE::from_json(j_model, o->model);
    // Columns: --x/--gate-x when given (they must be the model's), else the ones
    // a model with gate covariates names, else --y and all other columns.
    const bool gate_given = gate_x_opt->count() > 0;
    moerate::Dataset D;
    if (gate_given || !o->x.empty() || model.covariates().shared()) {
      auto DD = moerate::cli::read_design_data(o->data, o->x, gate_given, o->gate_x, o->y);
      if (DD.covariates.shared() != model.covariates().shared() ||
          (!DD.covariates.shared() && DD.covariates != model.covariates()))
        throw moerate::cli::UsageError("--x/--gate-x: the model " + o->model + " reads (" +
                                       model.covariates().describe() + "); the options give (" +
                                       DD.covariates.describe() + ")");
      D = std::move(DD.data);
    } else {
      D = moerate::cli::read_data_for_model(j_model, o->model, o->data, {}, o->y, true);
    }
    if (D.dim() != model.dim())
      throw moerate::cli::UsageError(o->data + " has d = " + std::to_string(D.dim()) + " covariates; the model " +
                                     o->model + " has d = " + std::to_string(model.dim()));
    const int step = std::max(1, o->replicates / 20);
    auto progress = [&](int done, int total) {
      if (!o->quiet && (done % step == 0 || done == total))
        std::cerr << "bootstrap: " << done << "/" << total << " replicates\n";
    };
    const auto r = moerate::bootstrap(model, D.X, D.y, bo, progress);
    moerate::json j;
    j["bootstrap"] = r.to_json(true);
    j["bootstrap"]["data"] = o->data;
    j["bootstrap"]["model"] = o->model;
    j["bootstrap"]["n_obs"] = D.n_obs();
    j["seed"] = o->seed;
    moerate::write_json_file(o->out, j);
    std::cout << "bootstrap " << o->data << " from " << o->model << ": n = " << D.n_obs() << ", " << o->replicates
              << " replicates, seed " << o->seed << ", estimator " << o->estimator << " (model start + " << o->starts
              << " k-means starts)\n";
    std::cout << r.table();
    std::cout << "wrote " << o->out << " (" << r.seconds << " s)\n";
  });
}
