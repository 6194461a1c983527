// moerate predict: predictive mean, variance, quantiles, gate weights and
// posterior expert probabilities for each row of a dataset, and the most
// probable expert: gate_expert = argmax_j pi_j(x) and, when y is present,
// posterior_expert = argmax_j of the posterior (1-based; ties: the first).
#include <iostream>
#include <sstream>

#include "cli_common.hpp"
#include "moerate/io/csv.hpp"
#include "moerate/core/error.hpp"
#include "moerate/model/model.hpp"
#include "moerate/model/response.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/io/files.hpp"

void add_predict_command(CLI::App& app) {
  struct Opts {
    std::string model, data, out, y;
    std::vector<std::string> x;
    std::vector<double> quantiles{0.05, 0.5, 0.95};
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("predict", "Predictive mean, variance, quantiles, gate weights and posteriors");
  cmd->add_option("--model", o->model, "Model file (JSON), e.g. written by 'moerate fit'")->required();
  cmd->add_option("--data", o->data, "Data CSV (the response column is optional)")->required();
  cmd->add_option("--quantiles", o->quantiles, "Predictive quantiles")->delimiter(',')->capture_default_str();
  cmd->add_option("--y", o->y, "Response column (default: the model file's, else y, if present)");
  cmd->add_option("--x", o->x, "Covariate columns (default: the model file's, else all others)")->delimiter(',');
  cmd->add_option("--out", o->out, "Output CSV")->required();
  moerate::cli::set_example(cmd, "moerate predict --model tone-fit.json --data data/tone.csv --out tone-pred.csv");
  cmd->callback([o]() {
    moerate::cli::configure_threads(1);
    moerate::cli::check_out(o->out, {o->model, o->data});
    for (double q : o->quantiles)
      if (!(q > 0 && q < 1)) throw moerate::cli::UsageError("--quantiles: each must lie in (0, 1); got " + moerate::to_text(q));
    const auto j_model = moerate::read_json_file(o->model);
    const auto m = moerate::GaussianMoE::from_json(j_model, o->model);
    // Columns: --x/--y, else the ones the model file records, else y and all others.
    const auto D = moerate::cli::read_data_for_model(j_model, o->model, o->data, o->x, o->y, false);
    if (D.dim() != m.dim())
      throw std::runtime_error(o->data + ": the data have " + std::to_string(D.dim()) + " covariates but the model " +
                               o->model + " has dimension " + std::to_string(m.dim()));
    const std::size_t k = m.n_experts(), n = D.n_obs();
    const arma::mat P = arma::exp(m.log_weights(D.X));
    const arma::rowvec mean = m.regression_function(D.X);
    const arma::rowvec var = m.predictive_variance(D.X);
    if (!P.is_finite() || !mean.is_finite() || !var.is_finite())
      throw std::runtime_error(o->model + ": predictions on " + o->data +
                               " overflow a double (inf or NaN); the covariates are too far out for this model");
    arma::mat post;
    if (D.has_y() && m.kind() == moerate::ModelKind::bernoulli) moerate::check_binary_response(D.y, D.source, D.lines);
    if (D.has_y() && m.kind() != moerate::ModelKind::regression) post = m.responsibilities(D.X, D.y);
    std::ostringstream out;
    for (const auto& nm : D.x_names) out << moerate::csv_field(nm) << ',';
    if (D.has_y()) out << moerate::csv_field(D.y_name) << ',';
    out << "mean,variance";
    for (double q : o->quantiles) out << ",q" << moerate::format_double(q);
    for (std::size_t j = 0; j < k; ++j) out << ",gate" << j + 1;
    if (!post.is_empty())
      for (std::size_t j = 0; j < k; ++j) out << ",posterior" << j + 1;
    out << ",gate_expert";
    if (!post.is_empty()) out << ",posterior_expert";
    out << '\n';
    arma::mat Q;
    try {
      Q = m.predictive_quantiles(D.X, o->quantiles);
    } catch (const std::exception&) {
      Q.reset();  // the root finder failed: reported below
    }
    if (Q.n_rows != o->quantiles.size() || Q.n_cols != n || !Q.is_finite())
      throw std::runtime_error(o->data + ": the predictive quantiles cannot be computed with " + o->model +
                               " (the values overflow a double; the covariates are too far out for this model)");
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t u = 0; u < D.dim(); ++u) out << moerate::format_double(D.X(u, i)) << ',';
      if (D.has_y()) out << moerate::format_double(D.y[i]) << ',';
      out << moerate::format_double(mean[i]) << ',' << moerate::format_double(var[i]);
      for (std::size_t q = 0; q < Q.n_rows; ++q) out << ',' << moerate::format_double(Q(q, i));
      for (std::size_t j = 0; j < k; ++j) out << ',' << moerate::format_double(P(j, i));
      if (!post.is_empty())
        for (std::size_t j = 0; j < k; ++j) out << ',' << moerate::format_double(post(j, i));
      out << ',' << P.col(i).index_max() + 1;
      if (!post.is_empty()) out << ',' << post.col(i).index_max() + 1;
      out << '\n';
    }
    moerate::write_file_atomic(o->out, out.str());
    std::cout << "predicted " << n << " rows with " << o->model << " -> " << o->out << "\n";
  });
}
