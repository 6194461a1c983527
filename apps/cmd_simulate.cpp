// moerate simulate: draw a dataset from a model file.
#include <climits>
#include <iostream>

#include "cli_common.hpp"
#include "moerate/core/error.hpp"
#include "moerate/io/csv.hpp"
#include "moerate/model/design.hpp"
#include "moerate/model/model.hpp"

void add_simulate_command(CLI::App& app) {
  struct Opts {
    std::string model, out, design = "uniform:0,1";
    std::size_t n = 0;
    std::uint64_t seed = 1;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("simulate", "Draw (x, y) from a model file: x from the design, y from the model");
  cmd->add_option("--model", o->model, "Model file (JSON)")->required();
  cmd->add_option("--n", o->n, "Number of observations")->required()->check(moerate::cli::whole(1, LLONG_MAX));
  moerate::cli::add_seed_option(cmd, o->seed, "Random seed (echoed in the output)");
  cmd->add_option("--design", o->design,
                  "Design of x, per coordinate: uniform:LO,HI | normal:MU,SD | grid:LO,HI")
      ->capture_default_str();
  cmd->add_option("--out", o->out, "Output CSV (columns x1..xd, y)")->required();
  moerate::cli::set_example(cmd,
                            "moerate simulate --model data/experiment-a.json --n 1000 --seed 1 --out sim.csv");
  cmd->callback([o]() {
    moerate::cli::configure_threads(1);
    moerate::cli::check_out(o->out, {o->model});
    try {
      moerate::check_problem_size("simulate --n", o->n, 1);
    } catch (const std::exception& e) {
      throw moerate::cli::UsageError(e.what());
    }
    const auto m = moerate::GaussianMoE::load(o->model);
    moerate::Rng rng(o->seed);
    const arma::mat X = moerate::draw_design(o->design, m.dim(), o->n, rng);
    moerate::cli::print_truth_findings(std::cerr, m, o->model, o->design, "moerate simulate: warning: ");
    const arma::rowvec y = m.simulate(X, rng);
    std::vector<std::string> names;
    for (std::size_t u = 0; u < m.dim(); ++u) names.push_back("x" + std::to_string(u + 1));
    moerate::write_dataset_csv(o->out, X, y, names);
    std::cout << "simulated n = " << o->n << " from " << o->model << " (design " << o->design
              << ", seed " << o->seed << ") -> " << o->out << "\n";
  });
}
