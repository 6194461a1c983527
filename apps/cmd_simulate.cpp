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
  cmd->add_option("--n", o->n, "Number of observations (with file:X.csv: optional, must equal its rows)")
      ->check(moerate::cli::whole(1, LLONG_MAX));
  moerate::cli::add_seed_option(cmd, o->seed, "Random seed (echoed in the output)");
  cmd->add_option("--design", o->design,
                  "Design of x, per coordinate: uniform:LO,HI | normal:MU,SD | grid:LO,HI; or file:X.csv (the covariate\n"
                  "columns of a CSV file, in order; a column named y is left out)")
      ->capture_default_str();
  cmd->add_option("--out", o->out, "Output CSV (columns x1..xd, y)")->required();
  moerate::cli::set_example(cmd,
                            "moerate simulate --model data/experiment-a.json --n 1000 --seed 1 --out sim.csv");
  cmd->callback([o]() {
    moerate::cli::configure_threads(1);
    moerate::cli::check_out(o->out, {o->model});
    const bool from_file = o->design.rfind("file:", 0) == 0;
    const std::string design_file = from_file ? o->design.substr(5) : "";
    if (from_file && design_file.empty())
      throw moerate::cli::UsageError("--design file:X.csv: the file name is empty");
    if (from_file) moerate::cli::check_out(o->out, {o->model, design_file});
    if (!from_file && o->n == 0) throw moerate::cli::UsageError("--n is required (unless --design file:X.csv)");
    if (o->n > 0) {
      try {
        moerate::check_problem_size("simulate --n", o->n, 1);
      } catch (const std::exception& e) {
        throw moerate::cli::UsageError(e.what());
      }
    }
    const auto m = moerate::GaussianMoE::load(o->model);
    moerate::Rng rng(o->seed);
    arma::mat X;
    std::vector<std::string> names;
    if (from_file) {
      moerate::CsvReadOptions ro;
      ro.require_y = false;
      // A model with gate covariates reads the columns it names (in any order).
      if (!m.covariates().shared()) ro.x_columns = m.covariates().columns();
      const auto D = moerate::read_csv(design_file, ro);
      if (D.dim() != m.dim())
        throw std::runtime_error("--design " + o->design + ": the file has " + std::to_string(D.dim()) +
                                 " covariate columns but the model " + o->model + " has dimension " +
                                 std::to_string(m.dim()));
      if (o->n > 0 && o->n != D.n_obs())
        throw moerate::cli::UsageError("--n " + std::to_string(o->n) + " differs from the " + std::to_string(D.n_obs()) +
                                       " rows of " + design_file + " (leave --n out to use every row)");
      X = D.X;
      names = D.x_names;
      o->n = D.n_obs();
    } else {
      X = moerate::draw_design(o->design, m.dim(), o->n, rng);
      // Columns x1..xd; a model with gate covariates names its own (covariates.columns).
      if (!m.covariates().shared()) names = m.covariates().columns();
      else
        for (std::size_t u = 0; u < m.dim(); ++u) names.push_back("x" + std::to_string(u + 1));
    }
    if (!from_file) moerate::cli::print_truth_findings(std::cerr, m, o->model, o->design, "moerate simulate: warning: ");
    const arma::rowvec y = m.simulate(X, rng);
    moerate::write_dataset_csv(o->out, X, y, names);
    std::cout << "simulated n = " << o->n << " from " << o->model << " (design " << o->design
              << ", seed " << o->seed << ") -> " << o->out << "\n";
  });
}
