// moerate plot-fit: a fitted model over its data (one covariate): the data,
// each expert's mean line h_j(x) and the predictive mean, and below them the
// gate weights pi_j(x).
#include <iostream>

#include "cli_common.hpp"
#include "moerate/io/csv.hpp"
#include "moerate/io/files.hpp"
#include "moerate/model/model.hpp"
#include "moerate/plot/plot.hpp"

void add_plotfit_command(CLI::App& app) {
  struct Opts {
    std::string model, data, out, title, y, save_script;
    std::vector<std::string> x;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("plot-fit", "Figure of a fitted model over its data: expert lines and gate (d = 1)");
  cmd->add_option("--model", o->model, "Model file (e.g. written by 'moerate fit')")->required();
  cmd->add_option("--data", o->data, "Data CSV")->required();
  cmd->add_option("--out", o->out, "Figure (.png, .svg or .pdf)")->required();
  cmd->add_option("--title", o->title, "Figure title");
  cmd->add_option("--y", o->y, "Response column (default: the model file's, else y)");
  cmd->add_option("--x", o->x, "Covariate column (default: the model file's)")->delimiter(',');
  cmd->add_option("--save-script", o->save_script, "Also save the gnuplot script (data inline) here");
  moerate::cli::set_example(cmd, "moerate plot-fit --model tone-fit.json --data data/tone.csv --out tone.png");
  cmd->callback([o]() {
    moerate::cli::check_out(o->out, {o->model, o->data});
    if (!o->save_script.empty()) moerate::cli::check_out(o->save_script, {o->model, o->data, o->out}, "--save-script");
    const auto j_model = moerate::read_json_file(o->model);
    const auto m = moerate::GaussianMoE::from_json(j_model, o->model);
    // Columns: --x/--y, else the ones the model file records, else y and all others.
    const auto D = moerate::cli::read_data_for_model(j_model, o->model, o->data, o->x, o->y, true);
    if (!m.covariates().shared())
      throw moerate::cli::UsageError("plot-fit draws models with one covariate; the model " + o->model + " reads " +
                                     std::to_string(m.dim()) + " columns (" + m.covariates().describe() +
                                     "): use predict for its curves");
    if (D.dim() != 1 || m.dim() != 1)
      throw moerate::cli::UsageError("plot-fit draws models with one covariate; the data have " +
                                     std::to_string(D.dim()) + " (choose one with --x)");
    const std::size_t G = 400;
    const double lo = D.X.min(), hi = D.X.max(), pad = 0.02 * (hi - lo);
    moerate::FitFigure fig;
    fig.x = D.X.row(0);
    fig.y = D.y;
    fig.grid = arma::linspace<arma::rowvec>(lo - pad, hi + pad, G);
    const arma::mat grid = fig.grid;
    fig.means = m.expert_means(grid);
    fig.gates = arma::exp(m.log_weights(grid));
    fig.predictive_mean = m.regression_function(grid);
    fig.x_label = D.x_names[0];
    fig.y_label = D.y_name;
    moerate::PlotOptions po;
    po.title = o->title.empty() ? o->data + ": " + std::to_string(m.n_experts()) + "-expert fit" : o->title;
    po.save_script = o->save_script;
    moerate::plot_fit(fig, o->out, po);
    std::cout << "wrote " << o->out << "\n";
  });
}
