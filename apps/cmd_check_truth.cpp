// moerate check-truth: does a true model satisfy the assumptions of the rate
// theorems on a design? (metrics/truth_check.hpp; experiments.md D)
#include <iostream>

#include "cli_common.hpp"
#include "moerate/core/error.hpp"
#include "moerate/metrics/truth_check.hpp"

namespace moerate::cli {

void print_truth_findings(std::ostream& os, const GaussianMoE& truth, const std::string& source,
                          const std::string& design, const std::string& prefix) {
  for (const auto& f : check_truth(truth, design)) os << prefix << source << ": " << f.message << "\n";
}

}  // namespace moerate::cli

void add_check_truth_command(CLI::App& app) {
  struct Opts {
    std::string model, design = "uniform:0,1";
    std::size_t mc = 4000;
    std::uint64_t seed = 1;
    bool strict = false, json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("check-truth",
                                 "Check a true model against the theory's assumptions on a design (gate not constant, "
                                 "Laplace centres inside, experts distinct and identifiable)");
  cmd->add_option("--model", o->model, "True model file (JSON)")->required();
  cmd->add_option("--design", o->design, "Design of x: uniform:LO,HI, normal:MU,SD, grid:LO,HI")->capture_default_str();
  cmd->add_option("--mc", o->mc, "Draws of x")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of the draws of x (echoed)")->capture_default_str();
  cmd->add_flag("--strict", o->strict, "Exit 1 when there is a finding");
  cmd->add_flag("--json", o->json, "Print the findings as JSON");
  moerate::cli::set_example(cmd, "moerate check-truth --model data/experiment-a.json --design uniform:0,1");
  cmd->callback([o]() {
    const auto truth = moerate::GaussianMoE::load(o->model);
    moerate::TruthCheckOptions co;
    co.n_mc = o->mc;
    co.seed = o->seed;
    std::vector<moerate::TruthFinding> found;
    try {
      co.validate();
      found = moerate::check_truth(truth, o->design, co);
    } catch (const moerate::InvalidArgument& e) {
      throw moerate::cli::UsageError(e.what());
    }
    if (o->json) {
      moerate::json j = moerate::json::array();
      for (const auto& f : found)
        j.push_back({{"kind", f.kind}, {"experts", f.experts}, {"value", f.value}, {"message", f.message}});
      std::cout << moerate::json{{"model", o->model}, {"design", o->design}, {"seed", o->seed}, {"findings", j}}.dump(2)
                << "\n";
    } else {
      std::cout << "check-truth " << o->model << " on " << o->design << " (" << o->mc << " draws, seed " << o->seed
                << "): " << (found.empty() ? "no finding" : std::to_string(found.size()) + " finding(s)") << "\n";
      for (const auto& f : found) std::cout << "  " << f.kind << ": " << f.message << "\n";
    }
    if (o->strict && !found.empty()) throw std::runtime_error(std::to_string(found.size()) + " finding(s) (--strict)");
  });
}
