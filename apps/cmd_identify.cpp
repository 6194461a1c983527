// moerate identify: numerical check of strong identifiability (models.md section 4).
#include <iostream>

#include "cli_common.hpp"
#include "moerate/core/error.hpp"
#include "moerate/metrics/identifiability.hpp"

void add_identify_command(CLI::App& app) {
  struct Opts {
    std::string expert, gating = "softmax", version = "all", model, params, design = "uniform:-2,2";
    std::size_t dim = 1, k = 2, points = 0;
    std::uint64_t seed = 1;
    double threshold = 1e-8;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "identify",
      "Check strong identifiability numerically: rank of the condition's function set, relations, verdict");
  cmd->add_option("--expert", o->expert,
                  "Expert family, e.g. linear | ffn:tanh | ffn:tanh,bias=false | polynomial:p=2 (see 'moerate list')");
  cmd->add_option("--gating", o->gating, "Gating family (for the gate version), e.g. temperature:tau=estimate,norm=none")
      ->capture_default_str();
  cmd->add_option("--dim,-d", o->dim, "Covariate dimension d")->capture_default_str()->check(moerate::cli::whole(1, 1000));
  cmd->add_option("--experts,-k", o->k, "Number of experts k (distinct random parameters)")
      ->capture_default_str()->check(moerate::cli::whole(1, 1000));
  cmd->add_option("--points", o->points, "Evaluation points N (0 = max(400, 4 x functions))")->capture_default_str()->check(moerate::cli::whole(0, 10000000));
  moerate::cli::add_seed_option(cmd, o->seed, "Random seed for the parameters and points (echoed)");
  cmd->add_option("--version", o->version,
                  "Which set: gaussian (h level; relations counted only if they lift to the density) | lse | "
                  "density (d^alpha u/d theta^alpha, |alpha| <= 2, of u = exp(beta1^T x) N(y; h, nu); "
                  "gate-expert is its old name) | gate | all (comma list allowed)")
      ->capture_default_str();
  cmd->add_option("--model", o->model, "Use a model file's families, d, k and parameters instead of random ones");
  cmd->add_option("--params", o->params,
                  "Expert parameter blocks that vary (comma list, e.g. a or a,c); the others are held fixed");
  cmd->add_option("--design", o->design, "Distribution of the evaluation points x: uniform:LO,HI | normal:MU,SD")
      ->capture_default_str();
  cmd->add_option("--threshold", o->threshold, "Relative singular-value threshold for the rank")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the reports as JSON instead of text");
  moerate::cli::set_example(cmd, "moerate identify --expert linear --dim 1 --experts 2 --version gaussian --seed 1");
  cmd->callback([o]() {
    moerate::cli::configure_threads(1);
    if (o->model.empty() && o->expert.empty()) throw moerate::cli::UsageError("--expert is required unless --model is given");
    std::vector<moerate::IdentVersion> versions;
    try {
      std::string v = o->version;
      if (v == "all") v = "gaussian,lse,density,gate";
      std::size_t pos = 0;
      while (pos <= v.size()) {
        const auto c = v.find(',', pos);
        const std::string part = v.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
        versions.push_back(moerate::parse_ident_version(part));
        if (c == std::string::npos) break;
        pos = c + 1;
      }
    } catch (const std::exception& e) {
      throw moerate::cli::UsageError(e.what());
    }
    moerate::IdentOptions opt;
    opt.seed = o->seed;
    opt.n_points = o->points;
    opt.rel_threshold = o->threshold;
    opt.design = o->design;
    if (!o->params.empty()) {
      std::size_t pos = 0;
      while (true) {
        const auto c = o->params.find(',', pos);
        opt.free_blocks.push_back(o->params.substr(pos, c == std::string::npos ? std::string::npos : c - pos));
        if (c == std::string::npos) break;
        pos = c + 1;
      }
    }
    moerate::IdentSetup setup;
    try {
      opt.validate();
      if (!o->model.empty()) {
        setup = moerate::setup_from_model(moerate::GaussianMoE::load(o->model), "parameters of " + o->model);
      } else {
        setup = moerate::random_setup(moerate::parse_family_spec(o->expert),
                                      o->gating.empty() ? moerate::json() : moerate::parse_family_spec(o->gating),
                                      o->dim, o->k, o->seed);
      }
    } catch (const moerate::InvalidArgument& e) {
      throw moerate::cli::UsageError(e.what());
    }
    moerate::json out = moerate::json::array();
    bool first = true;
    for (auto v : versions) {
      if (v == moerate::IdentVersion::gate && (!setup.gating || setup.gating->n_params() == 0)) {
        if (!o->json) std::cout << (first ? "" : "\n") << "identify (gate version): skipped: the gating has no free parameters\n";
        first = false;
        continue;
      }
      moerate::IdentReport r;
      try {
        r = moerate::identify(setup, v, opt);
      } catch (const moerate::InvalidArgument& e) {
        throw moerate::cli::UsageError(e.what());
      }
      if (o->json) {
        moerate::json j = r.to_json();
        j["seed"] = o->seed;
        out.push_back(j);
      } else {
        std::cout << (first ? "" : "\n") << r.text();
      }
      first = false;
    }
    if (o->json) std::cout << out.dump(2) << "\n";
  });
}
