// moerate loss: Voronoi loss (D1/D2) of a fitted model against the truth, and
// optionally density distances (Hellinger, TV, L2) over a design (docs/losses.md).
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli_common.hpp"
#include "moerate/metrics/distances.hpp"
#include "moerate/core/error.hpp"
#include "moerate/model/model.hpp"
#include "moerate/metrics/voronoi.hpp"

namespace {

// "M=R" -> (M, R); a usage error otherwise.
std::pair<int, double> parse_rbar(const std::string& text) {
  const auto eq = text.find('=');
  try {
    if (eq == std::string::npos) throw std::invalid_argument("");
    std::size_t u1 = 0, u2 = 0;
    const int m = std::stoi(text.substr(0, eq), &u1);
    const double r = std::stod(text.substr(eq + 1), &u2);
    if (u1 != eq || u2 != text.size() - eq - 1) throw std::invalid_argument("");
    if (m < 2 || !(r > 0) || !std::isfinite(r)) throw std::invalid_argument("");
    return {m, r};
  } catch (const std::exception&) {
    throw moerate::cli::UsageError("--rbar expects M=R with an integer cell size M >= 2 and a number "
                                   "R > 0 (e.g. --rbar 4=8); got '" + text + "'");
  }
}

}  // namespace

void add_loss_command(CLI::App& app) {
  struct Opts {
    std::string truth, fit, translation = "default", design = "uniform:0,1";
    std::vector<std::string> rbar;
    bool json = false, distances = false;
    std::size_t mc = 2000;
    std::uint64_t seed = 1;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "loss", "Voronoi loss (D1 exact-fitted, D2 over-fitted) of a fit against the truth, every term "
              "reported; optional density distances");
  cmd->add_option("--truth", o->truth, "True model file (JSON)")->required();
  cmd->add_option("--fit", o->fit, "Fitted model file (JSON)")->required();
  cmd->add_flag("--json", o->json, "Print one JSON object (top-level key \"loss\" is the total)");
  cmd->add_option("--rbar", o->rbar,
                  "rbar for a cell size, M=R (repeatable); known: 2=4, 3=6; larger cells need one")
      ->take_all();
  cmd->add_option("--translation", o->translation,
                  "default: fit re-expressed relative to the atoms standing for the true reference "
                  "expert (models.md section 6); infimum: numerical infimum over translations")
      ->check(CLI::IsMember({"default", "infimum"}))
      ->capture_default_str();
  auto* dist = cmd->add_flag("--distances", o->distances,
                             "Also Hellinger, total variation (expected over x) and L2 distances");
  cmd->add_option("--design", o->design, "Design of x for --distances and the atoms' average gate weights: uniform:LO,HI, normal:MU,SD, grid:LO,HI")
      ->capture_default_str()
      ->needs(dist);
  cmd->add_option("--mc", o->mc, "Monte Carlo draws of x for --distances")
      ->capture_default_str()
      ->check(moerate::cli::whole(2, 100000000))
      ->needs(dist);
  moerate::cli::add_seed_option(cmd, o->seed, "Seed of the Monte Carlo draws of x");
  moerate::cli::set_example(
      cmd, "moerate loss --truth data/experiment-a.json --fit fit.json --distances --mc 2000 --seed 1 --json");

  cmd->callback([o]() {
    moerate::cli::configure_threads(1);
    moerate::VoronoiOptions vo;
    vo.infimum_translation = o->translation == "infimum";
    for (const auto& text : o->rbar) {
      const auto mr = parse_rbar(text);
      vo.rbar[mr.first] = mr.second;
    }
    vo.design = o->design;  // each fitted atom's average gate weight over the design
    vo.design_seed = o->seed;
    const auto truth = moerate::GaussianMoE::load(o->truth);
    const auto fit = moerate::GaussianMoE::load(o->fit);
    const auto L = moerate::voronoi_loss(truth, fit, vo);
    moerate::json j = L.to_json();
    j["truth"] = o->truth;
    j["fit"] = o->fit;
    j["seed"] = o->seed;
    moerate::DensityDistances D{};
    if (o->distances) {
      D = moerate::density_distances(truth, fit, o->design, o->mc, o->seed);
      auto nn = [](double v) { return std::isfinite(v) ? moerate::json(v) : moerate::json(nullptr); };
      j["distances"] = {{"hellinger", nn(D.hellinger)}, {"hellinger_se", nn(D.hellinger_se)},
                        {"tv", nn(D.tv)},               {"tv_se", nn(D.tv_se)},
                        {"l2", nn(D.l2)},               {"l2_se", nn(D.l2_se)},
                        {"design", o->design},          {"mc", o->mc},
                        {"seed", o->seed}};
    }
    if (o->json) {
      std::cout << j.dump() << "\n";
      return;
    }
    const auto num = [](double v) { return moerate::cli::significant(v, 6, "n/a"); };
    std::cout << L.kind << " Voronoi loss " << num(L.total) << "  (k = " << j["k"] << ", k* = "
              << j["k_true"] << ", " << j["regime"].get<std::string>() << "; translation: "
              << L.convention << ")\n";
    std::cout << "  weights W " << num(L.terms.at("weights")) << ", singleton S "
              << num(L.terms.at("singleton")) << ", multi-atom cells " << num(L.terms.at("multi"))
              << "\n";
    std::cout << "  exponents: " << j["exponents"]["row"].get<std::string>() << "\n";
    const auto& blocks = j["blocks"];
    for (const auto& c : j["cells"]) {
      std::cout << "  true atom " << c["true_atom"] << ": " << c["size"] << " fitted atom(s)";
      if (!c["fitted_atoms"].empty()) std::cout << " " << c["fitted_atoms"].dump();
      std::cout << ", weight error " << num(c["weight_error"].get<double>());
      for (const auto& b : blocks) {
        const auto& e = c["errors"][b.get<std::string>()];
        std::cout << ", |D" << b.get<std::string>() << "| " << (e.is_null() ? "n/a" : num(e.get<double>()));
      }
      std::cout << (c["size"].get<int>() >= 2 ? " (weighted power means)" : "") << "\n";
      for (const auto& a : c["atoms"])
        if (c["size"].get<int>() >= 2 || (a.contains("negligible") && a["negligible"].get<bool>())) {
          std::cout << "    atom " << a["index"] << ": exp(beta0) " << num(a["weight"].get<double>());
          if (a.contains("gate_mean"))
            std::cout << ", average gate weight " << num(a["gate_mean"].get<double>())
                      << (a["negligible"].get<bool>() ? " (NEGLIGIBLE)" : "");
          std::cout << "\n";
        }
    }
    for (const auto& n : j["notes"]) std::cout << "  note: " << n.get<std::string>() << "\n";
    if (o->distances)
      std::cout << "density distances over " << o->design << " (" << o->mc << " draws, seed " << o->seed
                << "): Hellinger " << num(D.hellinger) << " (se " << num(D.hellinger_se) << "), TV "
                << num(D.tv) << " (se " << num(D.tv_se) << "), L2 " << num(D.l2) << " (se "
                << num(D.l2_se) << ")\n";
  });
}
