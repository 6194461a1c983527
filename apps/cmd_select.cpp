// moerate select: fit every k of a range, tabulate log-likelihood, parameters,
// AIC, BIC, ICL and degenerate flags, and pick k by each criterion.
#include <iostream>
#include <tuple>

#include "cli_common.hpp"
#include "moerate/core/error.hpp"
#include "moerate/estimators/selection.hpp"
#include "moerate/io/csv.hpp"
#include "moerate/io/files.hpp"
#include "moerate/plot/plot.hpp"

void add_select_command(CLI::App& app) {
  struct Opts {
    std::string data, out, csv, plot, y, experts, expert = "linear", gating = "softmax", estimator = "em", init = "kmeans";
    std::vector<std::string> x, gate_x;
    int starts = 10, threads = 0;
    double prune_factor = moerate::FitOptions{}.prune_factor;
    moerate::cli::EmCliOptions em;
    double tiny_variance = moerate::SelectOptions{}.tiny_variance;
    std::uint64_t seed = 1;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("select", "Choose the number of experts: fit each k, AIC, BIC, ICL, degenerate fits flagged");
  cmd->add_option("--data", o->data, "Data CSV with a header")->required();
  cmd->add_option("--experts,-k", o->experts, "Range of k, A:B (e.g. 1:6), or one K")->required();
  cmd->add_option("--expert", o->expert, "Expert family: linear | ffn:ACT | see 'moerate list'")->capture_default_str();
  cmd->add_option("--gating", o->gating, "Gating family (see 'moerate list')")->capture_default_str();
  cmd->add_option("--estimator", o->estimator, "Estimator: em | see 'moerate list'")->capture_default_str();
  cmd->add_option("--starts", o->starts, "Starts per k; the best log-likelihood is kept")
      ->capture_default_str()->check(moerate::cli::whole(1, 100000));
  moerate::cli::add_seed_option(cmd, o->seed, "Random seed: the fit of each k is the one 'moerate fit -k K --seed S' gives");
  cmd->add_option("--init", o->init, "Initialisation: random | kmeans")->capture_default_str();
  moerate::cli::add_em_options(cmd, o->em);
  moerate::cli::add_prune_option(cmd, o->prune_factor);
  cmd->add_option("--tiny-variance", o->tiny_variance,
                  "A fit with a variance below this times var(y) is degenerate (never picked silently)")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "Threads for parallel starts (0 = all cores); results do not depend on it")
      ->capture_default_str();
  cmd->add_option("--y", o->y, "Response column (default y)");
  cmd->add_option("--x", o->x, "Covariate columns (default: all others)")->delimiter(',');
  auto* gate_x_opt = moerate::cli::add_gate_x_option(cmd, o->gate_x);
  cmd->add_option("--out", o->out, "Output JSON: the table, the picks and every fitted model")->required();
  cmd->add_option("--csv", o->csv, "Also write the table as CSV (one row per k)");
  cmd->add_option("--plot", o->plot, "Also draw the criteria against k (.png, .svg or .pdf)");
  moerate::cli::set_example(cmd, "moerate select --data data/tone.csv --experts 1:4 --starts 10 --seed 1 --out tone-select.json "
                                 "--csv tone-select.csv --plot tone-select.png");
  cmd->callback([o, gate_x_opt]() {
    o->threads = moerate::cli::configure_threads(o->threads);
    moerate::cli::check_out(o->out, {o->data});
    if (!o->csv.empty()) moerate::cli::check_out(o->csv, {o->data, o->out}, "--csv");
    if (!o->plot.empty()) {
      moerate::cli::check_out(o->plot, {o->data, o->out, o->csv}, "--plot");
      const std::string& p = o->plot;
      auto ends = [&](const std::string& e) { return p.size() >= e.size() && p.compare(p.size() - e.size(), e.size(), e) == 0; };
      if (!ends(".png") && !ends(".svg") && !ends(".pdf"))
        throw moerate::cli::UsageError("--plot must end in .png, .svg or .pdf; got '" + p + "'");
    }
    moerate::SelectOptions so;
    try {
      std::tie(so.k_min, so.k_max) = moerate::parse_k_range(o->experts, "--experts");
    } catch (const std::exception& e) {
      throw moerate::cli::UsageError(e.what());
    }
    if (so.k_max > 1000) throw moerate::cli::UsageError("--experts: k must be at most 1000; got " + o->experts);
    moerate::cli::check_range("--starts", o->starts, 1, 100000);
    moerate::cli::check_range("--tiny-variance", o->tiny_variance, 0, 1);
    auto& fo = so.fit;
    moerate::cli::apply_em_options(o->em, fo.em);
    so.tiny_variance = o->tiny_variance;
    try {
      fo.expert = moerate::parse_family_spec(o->expert);
      fo.gating = moerate::parse_family_spec(o->gating);
      fo.init = moerate::InitSpec::parse(o->init);
      if (!fo.init.cycle.empty() || (fo.init.kind != moerate::InitKind::random && fo.init.kind != moerate::InitKind::kmeans))
        throw moerate::cli::UsageError("--init: select fits several k; use random or kmeans; got '" + o->init + "'");
      fo.estimator = o->estimator;
      fo.n_starts = o->starts;
      fo.prune_factor = o->prune_factor;
      fo.seed = o->seed;
      fo.threads = o->threads;
      fo.n_experts = so.k_max;
      so.validate();
      moerate::make_gating(fo.gating, so.k_max, 1);
      moerate::make_expert_family(fo.expert, 1);
    } catch (const moerate::cli::UsageError&) {
      throw;
    } catch (const std::exception& e) {
      throw moerate::cli::UsageError(e.what());
    }
    const auto DD = moerate::cli::read_design_data(o->data, o->x, gate_x_opt->count() > 0, o->gate_x, o->y);
    const auto& D = DD.data;
    fo.covariates = DD.covariates;
    if (D.n_obs() < so.k_max)
      throw moerate::cli::UsageError("--experts: k = " + std::to_string(so.k_max) + " is above what the data support: " +
                                     o->data + " has n = " + std::to_string(D.n_obs()) +
                                     " observations and every expert needs at least one");
    const auto s = moerate::select_experts(D.X, D.y, so);
    moerate::json j = s.to_json();
    // Each row's model is a model file that predict, loglik, plot-fit and dendrogram read by column name.
    for (auto& row : j["rows"]) {
      row["model"]["fit"]["data"] = o->data;
      row["model"]["fit"]["seed"] = o->seed;
      row["model"]["fit"]["x_columns"] = DD.x_columns;
      row["model"]["fit"]["gate_x_columns"] = DD.gate_x_columns;
      row["model"]["fit"]["y_column"] = D.y_name;
    }
    j["select"] = {{"data", o->data},        {"experts", o->experts}, {"seed", o->seed},
                   {"starts", o->starts},    {"x_columns", DD.x_columns}, {"gate_x_columns", DD.gate_x_columns}, {"y_column", D.y_name},
                   {"expert", fo.expert},     {"gating", fo.gating},   {"tiny_variance", o->tiny_variance},
                   {"icl", "BIC + 2 * classification entropy (soft responsibilities)"}};
    if (!o->plot.empty()) {
      moerate::PlotOptions po;
      po.title = o->data + ": choosing k";
      moerate::plot_selection(s, o->plot, po);
    }
    if (!o->csv.empty()) moerate::write_file_atomic(o->csv, s.csv());
    moerate::write_json_file(o->out, j);
    std::cout << "select " << o->data << ": n = " << D.n_obs() << ", d = " << D.dim() << ", k = " << o->experts << ", "
              << o->starts << " starts per k, seed " << o->seed << "\n";
    std::cout << s.table();
    std::cout << "wrote " << o->out;
    if (!o->csv.empty()) std::cout << ", " << o->csv;
    if (!o->plot.empty()) std::cout << ", " << o->plot;
    std::cout << " (" << s.seconds << " s)\n";
  });
}
