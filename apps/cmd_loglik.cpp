// moerate loglik: log-likelihood (or mean squared error) of a model on data.
#include <iomanip>
#include <iostream>

#include "cli_common.hpp"
#include "moerate/io/csv.hpp"
#include "moerate/io/files.hpp"
#include "moerate/model/model.hpp"
#include "moerate/model/response.hpp"

void add_loglik_command(CLI::App& app) {
  struct Opts {
    std::string model, data, y;
    std::vector<std::string> x;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("loglik", "Log-likelihood of a model on a dataset (MSE for the regression model)");
  cmd->add_option("--model", o->model, "Model file (JSON)")->required();
  cmd->add_option("--data", o->data, "Data CSV with a header")->required();
  cmd->add_option("--y", o->y, "Response column (default: the model file's, else y)");
  cmd->add_option("--x", o->x, "Covariate columns (default: the model file's, else all others)")->delimiter(',');
  cmd->add_flag("--json", o->json, "Print one JSON object (log_likelihood, n_obs, ...)");
  moerate::cli::set_example(cmd, "moerate loglik --model data/experiment-a.json --data sim.csv --json");
  cmd->callback([o]() {
    moerate::cli::configure_threads(1);
    const auto j_model = moerate::read_json_file(o->model);
    const auto m = moerate::GaussianMoE::from_json(j_model, o->model);
    // Columns: --x/--y, else the ones the model file records, else y and all others.
    const auto D = moerate::cli::read_data_for_model(j_model, o->model, o->data, o->x, o->y, true);
    if (D.dim() != m.dim())
      throw std::runtime_error(o->data + ": the data have " + std::to_string(D.dim()) +
                               " covariates but the model " + o->model + " has dimension " +
                               std::to_string(m.dim()));
    if (m.kind() == moerate::ModelKind::bernoulli) moerate::check_binary_response(D.y, D.source, D.lines);
    moerate::json j;
    j["n_obs"] = D.n_obs();
    const double mse = arma::mean(arma::square(D.y - m.regression_function(D.X)));
    j["mse"] = mse;
    if (m.kind() != moerate::ModelKind::regression) {
      const double ll = m.log_likelihood(D.X, D.y);
      j["log_likelihood"] = ll;
      j["mean_log_likelihood"] = ll / D.n_obs();
    }
    if (o->json) {
      std::cout << j.dump() << "\n";
      return;
    }
    std::cout << std::setprecision(10);
    if (m.kind() != moerate::ModelKind::regression)
      std::cout << "log-likelihood " << j["log_likelihood"].get<double>() << " (mean "
                << j["mean_log_likelihood"].get<double>() << ") over n = " << D.n_obs() << "\n";
    std::cout << "mean squared error of the regression function " << mse << "\n";
  });
}
