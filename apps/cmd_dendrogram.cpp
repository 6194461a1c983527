// moerate dendrogram: merge the atoms of an over-fitted fit pairwise, record
// merge heights and the log-likelihood of every level, choose k (DSC).
#include <iomanip>
#include <iostream>

#include "cli_common.hpp"
#include "moerate/core/error.hpp"
#include "moerate/io/csv.hpp"
#include "moerate/io/files.hpp"
#include "moerate/metrics/dendrogram.hpp"
#include "moerate/plot/plot.hpp"

void add_dendrogram_command(CLI::App& app) {
  struct Opts {
    std::string fit, data, out, plot, y;
    std::vector<std::string> x;
    double omega = 0, power = 2;
    std::string weights = "mass";
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("dendrogram", "Dendrogram of mixing measures of an over-fitted fit; choose k from it");
  cmd->add_option("--fit", o->fit, "Fitted model file (e.g. 'moerate fit -k 5' on the data)")->required();
  cmd->add_option("--data", o->data, "Data CSV (the columns of the fit are read by name)")->required();
  cmd->add_option("--out", o->out, "Output JSON: merges, heights, levels with their models and log-likelihoods")->required();
  cmd->add_option("--plot", o->plot, "Also draw the dendrogram (.png, .svg or .pdf)");
  cmd->add_option("--omega", o->omega, "Weight of the mean log-likelihood in the criterion (0 = log n)")->capture_default_str();
  cmd->add_option("--power", o->power, "r of the merge dissimilarity p_i p_j/(p_i+p_j) |theta_i - theta_j|^r")
      ->capture_default_str();
  cmd->add_option("--weights", o->weights,
                  "Atom weights: mass (gate mass on the data; theta = expert parameters and variance) | beta0 (exp(beta0), "
                  "theta with the gate slope: the papers', for bounded gates)")
      ->capture_default_str();
  cmd->add_option("--y", o->y, "Response column (default: the fit's, else y)");
  cmd->add_option("--x", o->x, "Covariate columns (default: the fit's, else all others)")->delimiter(',');
  moerate::cli::set_example(cmd, "moerate dendrogram --fit fit5.json --data sim.csv --out dendro.json --plot dendro.png");
  cmd->callback([o]() {
    moerate::cli::configure_threads(1);
    moerate::cli::check_out(o->out, {o->fit, o->data});
    if (!o->plot.empty()) {
      moerate::cli::check_out(o->plot, {o->fit, o->data, o->out}, "--plot");
      const std::string& p = o->plot;
      auto ends = [&](const std::string& e) { return p.size() >= e.size() && p.compare(p.size() - e.size(), e.size(), e) == 0; };
      if (!ends(".png") && !ends(".svg") && !ends(".pdf"))
        throw moerate::cli::UsageError("--plot must end in .png, .svg or .pdf; got '" + p + "'");
    }
    moerate::cli::check_range("--omega", o->omega, 0, 1e12);
    moerate::cli::check_range("--power", o->power, 1e-3, 100);
    if (o->weights != "mass" && o->weights != "beta0")
      throw moerate::cli::UsageError("--weights: expected mass or beta0; got '" + o->weights + "'");
    const auto j_fit = moerate::read_json_file(o->fit);
    const auto m = moerate::GaussianMoE::from_json(j_fit, o->fit);
    if (m.gating().family() != "softmax")
      throw moerate::cli::UsageError("--fit: the dendrogram merges softmax gates only; " + o->fit + " has gating '" +
                                     m.gating().family() + "'");
    if (m.kind() != moerate::ModelKind::gaussian)
      throw moerate::cli::UsageError("--fit: the dendrogram needs a Gaussian MoE; " + o->fit + " is a regression model");
    const auto D = moerate::cli::read_data_for_model(j_fit, o->fit, o->data, o->x, o->y, true);
    if (D.dim() != m.dim())
      throw std::runtime_error(o->data + ": the data have " + std::to_string(D.dim()) + " covariates but the fit " +
                               o->fit + " has dimension " + std::to_string(m.dim()));
    moerate::DendrogramOptions opt;
    opt.omega = o->omega;
    opt.power = o->power;
    opt.weights = o->weights;
    const auto d = moerate::build_dendrogram(m, D.X, D.y, opt);
    moerate::json j = d.to_json();
    j["dendrogram"] = {{"fit", o->fit}, {"data", o->data}, {"x_columns", D.x_names}, {"y_column", D.y_name}};
    if (!o->plot.empty()) {
      moerate::PlotOptions po;
      po.title = o->fit + ": dendrogram of mixing measures";
      moerate::plot_dendrogram(d, o->plot, po);
    }
    moerate::write_json_file(o->out, j);
    std::cout << std::setprecision(6);
    std::cout << "dendrogram of " << o->fit << " (k = " << m.n_experts() << ") on " << o->data << ": n = " << D.n_obs()
              << ", omega = " << d.omega << ", weights " << d.weights << "\n";
    std::cout << "   k  merge height  mean log-lik           DSC  merged next\n";
    for (std::size_t i = 0; i < d.levels.size(); ++i) {
      const auto& lev = d.levels[i];
      std::cout << std::setw(4) << lev.k << std::setw(14) << lev.height << std::setw(14) << lev.mean_log_likelihood
                << std::setw(14) << lev.dsc;
      if (i < d.merges.size()) {
        std::cout << "  {";
        for (std::size_t u = 0; u < d.merges[i].leaves.size(); ++u) std::cout << (u ? "," : "") << d.merges[i].leaves[u] + 1;
        std::cout << "}";
      }
      std::cout << (lev.k == d.chosen_k ? "  <- chosen" : "") << "\n";
    }
    std::cout << "chosen k = " << d.chosen_k << " (argmax of height + omega * mean log-likelihood)\n";
    std::cout << "wrote " << o->out << (o->plot.empty() ? "" : ", " + o->plot) << "\n";
  });
}
