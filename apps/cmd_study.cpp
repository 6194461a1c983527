// moerate study: built-in convergence-rate studies (experiments A and B of
// the spec): sweep, rate table with intervals beside the theory, figures.
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "cli_common.hpp"
#include "moerate/core/error.hpp"
#include "moerate/plot/plot.hpp"
#include "moerate/studies/best_of.hpp"
#include "moerate/studies/rates.hpp"
#include "moerate/io/csv.hpp"
#include "moerate/studies/builtin_studies.hpp"
#include "moerate/studies/scenarios.hpp"
#include "moerate/studies/sweep.hpp"
#include "moerate/studies/theory.hpp"
#include "moerate/io/files.hpp"

namespace {

using moerate::json;

// Two fits of the same data "reach the same log-likelihood" within this (nats).
constexpr double kStartsAgreeTol = 1e-3;

// "MIN:MAX:COUNT" with 2 <= MIN < MAX <= 1e8 and 2 <= COUNT <= 1000.
std::array<long long, 3> parse_n_grid(const std::string& text) {
  std::array<long long, 3> v{};
  std::size_t pos = 0;
  for (int i = 0; i < 3; ++i) {
    const std::size_t end = i < 2 ? text.find(':', pos) : text.size();
    const std::string part = end == std::string::npos ? std::string() : text.substr(pos, end - pos);
    const auto r = std::from_chars(part.data(), part.data() + part.size(), v[i]);
    if (part.empty() || r.ec != std::errc() || r.ptr != part.data() + part.size())
      throw moerate::cli::UsageError("--n: expected MIN:MAX:COUNT with whole numbers (e.g. 3000:100000:6); got '" + text + "'");
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  if (!(v[0] >= 2 && v[0] < v[1] && v[1] <= 100000000 && v[2] >= 2 && v[2] <= 1000))
    throw moerate::cli::UsageError("--n: need 2 <= MIN < MAX <= 1e8 and 2 <= COUNT <= 1000; got '" + text + "'");
  return v;
}

}  // namespace

// apps/study_scenarios.cpp: the scenario studies (experiments.md E).
void run_scenario_study_command(const std::string& name, const std::string& scale, const std::string& out, int threads,
                                int bootstrap, bool print_config, bool quiet);

void add_study_command(CLI::App& app) {
  struct Opts {
    std::string name, scale = "quick", out, n_grid;
    int threads = 0, bootstrap = 1000, starts = 0, replications = 0;
    bool print_config = false, quiet = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("study", "Run a built-in convergence-rate study: results, rate table and figures");
  cmd->add_option("name", o->name,
                  "softmax-linear-exact (A1) | softmax-linear-over (A2) | softmax-linear-over3 (A3) | linear-vs-ffn (B) | "
                  "latent-clusters | cluster-centres | expressive-power (E)")
      ->required();
  cmd->add_option("--scale", o->scale,
                  "quick (minutes), medium (exact-fitted: 20 sizes in [1e2, 1e5] x 20; over-fitted: 10 sizes in [200, 3e4] x 12) or paper (200 sizes in [1e2, 1e5], 40 replications)")
      ->capture_default_str();
  cmd->add_option("--out", o->out, "Output directory (default out/NAME-SCALE)");
  cmd->add_option("--threads", o->threads, "Threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--bootstrap", o->bootstrap, "Bootstrap resamples for the slope intervals")->capture_default_str()->check(moerate::cli::whole(0, 1000000));
  cmd->add_option("--starts", o->starts,
                  "Starts per fit of the truth-free settings (k-means, split); near-truth settings keep theirs, "
                  "one per way of splitting the true atoms (default: the scale's)")
      ->check(moerate::cli::whole(1, 1000));
  cmd->add_option("--replications", o->replications, "Replications per sample size (default: the scale's)")
      ->check(moerate::cli::whole(1, 100000));
  cmd->add_option("--n", o->n_grid,
                  "Sample sizes MIN:MAX:COUNT, log-spaced (default: the scale's), e.g. 3000:100000:6 for the upper range");
  cmd->add_flag("--print-config", o->print_config, "Print the study file and exit (edit it and run 'moerate sweep')");
  cmd->add_flag("--quiet", o->quiet, "No progress on stderr");
  moerate::cli::set_example(cmd, "moerate study linear-vs-ffn --scale quick --out out/linear-vs-ffn");
  cmd->callback([o]() {
    namespace fs = std::filesystem;
    o->threads = moerate::cli::configure_threads(o->threads);
    moerate::cli::check_range("--bootstrap", o->bootstrap, 0, 1000000);
    if (moerate::is_scenario_study(o->name)) {
      if (o->starts > 0 || o->replications > 0 || !o->n_grid.empty())
        throw moerate::cli::UsageError("--starts, --replications and --n apply to the rate studies (A1, A2, A3, B), not to " +
                                       o->name);
      run_scenario_study_command(o->name, o->scale, o->out, o->threads, o->bootstrap, o->print_config, o->quiet);
      return;
    }
    json cfg;
    try {
      cfg = moerate::builtin_study_config(o->name, o->scale);
    } catch (const moerate::InvalidArgument& e) {
      throw moerate::cli::UsageError(e.what());
    }
    std::string variant;  // appended to the default directory when the scale's defaults are changed
    if (o->starts > 0) {
      for (auto& st : cfg["settings"])
        if (st.value("init", std::string("kmeans")) != "near-truth") st["starts"] = o->starts;
      variant += "-starts" + std::to_string(o->starts);
    }
    if (o->replications > 0) {
      cfg["replications"] = o->replications;
      variant += "-reps" + std::to_string(o->replications);
    }
    if (!o->n_grid.empty()) {
      const auto g = parse_n_grid(o->n_grid);
      cfg["n"] = json{{"min", g[0]}, {"max", g[1]}, {"count", g[2]}};
      variant += "-n" + std::to_string(g[0]) + "-" + std::to_string(g[1]) + "x" + std::to_string(g[2]);
    }
    if (o->print_config) {
      std::cout << cfg.dump(2) << "\n";
      return;
    }
    const std::string dir = o->out.empty() ? "out/" + o->name + "-" + o->scale + variant : o->out;
    {
      std::error_code ec;
      const auto st = fs::symlink_status(dir, ec);
      if (fs::exists(st) && !fs::is_directory(st))
        throw moerate::cli::UsageError("--out: " + dir + " exists and is not a directory (the study writes several files into a directory)");
      fs::create_directories(dir, ec);
      if (ec) throw std::runtime_error(dir + ": cannot create the output directory: " + ec.message());
    }
    const std::string cfg_path = dir + "/study.json", results = dir + "/results.csv";
    // A directory holds one study: rerunning the same study resumes it.
    bool resume = false;
    if (fs::exists(cfg_path)) {
      const json old = moerate::read_json_file(cfg_path);
      json old_more = old;  // the same study with more replications extends it (the seeds do not depend on the count)
      if (old.contains("replications") && cfg.contains("replications") && old["replications"].is_number_integer() &&
          cfg["replications"].get<long long>() > old["replications"].get<long long>())
        old_more["replications"] = cfg["replications"];
      if (old_more != cfg)
        throw std::runtime_error(dir + " holds a different study (" + cfg_path + "); choose another --out");
      if (old != cfg) {
        std::cerr << "moerate study: " << dir << ": extending the study from " << old["replications"] << " to "
                  << cfg["replications"] << " replications\n";
        moerate::write_file_atomic(cfg_path, cfg.dump(2) + "\n", /*replaces_input=*/true);
      }
      resume = fs::exists(results);  // the same study: its file stays as it is
    } else {
      moerate::write_file_atomic(cfg_path, cfg.dump(2) + "\n");
    }
    const moerate::Study study = moerate::Study::from_json(cfg, cfg_path);
    for (std::size_t t = 0; t < study.truths.size(); ++t)
      moerate::cli::print_truth_findings(std::cerr, study.truths[t], "truth '" + study.truth_names[t] + "'",
                                         study.design, "moerate study: warning: ");
    std::cout << "study " << o->name << " (" << o->scale << "): " << study.settings.size() << " settings x "
              << study.n_grid.size() << " sizes in [" << study.n_grid.front() << ", " << study.n_grid.back() << "] x "
              << study.replications << " replications; truth-free starts (k-means, and split for over-fitted fits) and, where labelled, near-truth starts"
              << (resume ? "; resuming" : "") << "\n";
    moerate::SweepOptions so;
    so.threads = o->threads;
    so.resume = resume;
    so.progress = !o->quiet;
    const auto sum = moerate::run_sweep(study, results, so);
    if (sum.tasks_run > 0 && sum.tasks_failed == sum.tasks_run) {
      std::string msg = "every task failed (" + std::to_string(sum.tasks_failed) + "); the first errors:";
      for (const auto& e : sum.first_errors) msg += "\n  " + e;
      throw std::runtime_error(msg);
    }
    std::cout << "sweep: " << sum.tasks_run << " fits in " << moerate::cli::fixed(sum.seconds, 1) << " s (" << sum.tasks_skipped
              << " resumed), " << sum.tasks_failed << " failed, " << sum.capped << " at the iteration cap, " << sum.uncertified << " not certified\n\n";

    // Rates with bootstrap intervals beside the theory.
    moerate::CsvTable table = moerate::read_csv_table(results);
    // Settings that fit the same data with different starts (truth-free and
    // near-truth): per data set, do they reach the same log-likelihood, and the
    // best of them as a further setting "LABEL best" (studies/best_of.hpp).
    std::vector<moerate::StudySetting> reported;
    std::map<std::string, moerate::StartAgreement> agreement;  // by truth-free, near-truth and best label
    bool any_best = false;
    for (const auto& st : study.settings) {
      reported.push_back(st);
      const auto partner = std::find_if(study.settings.begin(), study.settings.end(),
                                        [&](const auto& o) { return o.label == st.label + " near-truth"; });
      if (partner == study.settings.end()) continue;
      moerate::StartAgreement a;
      table = moerate::with_best_of(table, {st.label, partner->label}, st.label + " best", kStartsAgreeTol, &a, results);
      agreement[st.label] = agreement[partner->label] = agreement[st.label + " best"] = a;
    }
    for (const auto& st : study.settings)
      if (agreement.count(st.label + " best")) {
        moerate::StudySetting b = st;
        b.label = st.label + " best";
        const auto at = std::find_if(reported.begin(), reported.end(),
                                     [&](const auto& o) { return o.label == st.label + " near-truth"; });
        reported.insert(at == reported.end() ? reported.end() : at + 1, b);
        any_best = true;
      }
    if (any_best) {
      moerate::write_file_atomic(dir + "/results-best.csv", moerate::csv_table_text(table.header, table.rows));
    }
    moerate::RateFitOptions ro;
    ro.bootstrap = o->bootstrap;
    json rates = json::object();
    struct Entry {
      moerate::RateFit fit;
      std::optional<double> theory;
    };
    std::map<std::string, std::map<std::string, Entry>> by_setting;  // setting -> metric -> fit
    std::vector<std::string> metric_order;
    std::cout << "Convergence rates: error ~ n^(-e), e fitted on every certified replicate, " << int(ro.level * 100)
              << "% bootstrap interval (replications resampled within n)\n";
    std::cout << std::left << std::setw(26) << "setting" << std::setw(14) << "metric" << std::setw(8) << "e"
              << std::setw(20) << "interval" << std::setw(9) << "theory" << std::setw(9) << "agrees?"
              << std::setw(18) << "trust" << "used/capped/uncert/failed\n";
    for (const auto& st : reported) {
      const auto th = moerate::theory_exponents(study.truths[st.truth_index], st.fit, study.voronoi.rbar);
      for (const auto& m : moerate::report_metrics(table, study, st)) {
        const auto lt = moerate::loss_table_from_results(table, m, st.label, results);
        Entry e{moerate::fit_rate(lt, ro), std::nullopt};
        if (th.count(m)) e.theory = th.at(m);
        by_setting[st.label][m] = e;
        if (std::find(metric_order.begin(), metric_order.end(), m) == metric_order.end()) metric_order.push_back(m);
      }
    }
    // A rate is trustworthy where the truth-free and near-truth starts
    // agree (experiments.md C, D): they must reach the same log-likelihood on
    // (at least 90% of) the same data sets, not merely give overlapping slope
    // intervals. "best" rows take the larger log-likelihood per data set.
    auto trust_of = [&](const std::string& label, const std::string&) -> std::string {
      if (!agreement.count(label)) return "-";
      if (label.size() > 5 && label.substr(label.size() - 5) == " best") return "best of starts";
      const auto& a = agreement.at(label);
      if (a.datasets == 0) return "-";
      const std::string frac = std::to_string(a.agree) + "/" + std::to_string(a.datasets);
      return (double(a.agree) >= 0.9 * double(a.datasets) ? "agree " : "DISAGREE ") + frac;
    };
    for (const auto& st : reported) {
      for (const auto& m : metric_order) {
        if (!by_setting[st.label].count(m)) continue;
        const Entry& e = by_setting[st.label][m];
        const auto& f = e.fit;
        json jf = f.to_json();
        if (e.theory) jf["theory"] = *e.theory;
        jf["trust"] = trust_of(st.label, m);
        rates[st.label][m] = jf;
        std::cout << std::left << std::setw(26) << st.label << std::setw(14) << m.substr(2);
        if (!f.fitted) {
          std::cout << "not fitted: " << f.note << "\n";
          continue;
        }
        std::string agree = "-";
        if (e.theory) agree = (*e.theory >= f.ci_low && *e.theory <= f.ci_high) ? "yes" : "no";
        std::cout << std::setw(8) << moerate::cli::fixed(f.exponent) << std::setw(20)
                  << ("[" + moerate::cli::fixed(f.ci_low) + ", " + moerate::cli::fixed(f.ci_high) + "]") << std::setw(9)
                  << (e.theory ? moerate::exponent_label(*e.theory) : "-") << std::setw(9) << agree << std::setw(18)
                  << trust_of(st.label, m) << f.n_used << "/" << f.n_capped << "/" << f.n_uncertified << "/"
                  << f.n_failed << "\n";
      }
    }
    for (const auto& st : study.settings) {
      if (!agreement.count(st.label + " best")) continue;
      const auto& a = agreement.at(st.label);
      std::cout << "starts, " << st.label << ": truth-free (" << st.fit.init.label() << ") and near-truth starts reach the same log-likelihood (within "
                << moerate::cli::fixed(kStartsAgreeTol) << " nats) on " << a.agree << " of " << a.datasets
                << " data sets; median gap " << moerate::cli::fixed(a.median_gap) << " nats (max " << moerate::cli::fixed(a.max_gap)
                << "); the larger: truth-free " << a.best_count[0] << ", near-truth " << a.best_count[1] << "\n";
    }
    if (any_best)
      std::cout << "('best' rows: per data set the certified fit with the larger log-likelihood; "
                << dir << "/results-best.csv)\n";
    // The headline verdict: for beta1 and b, linear experts slower than tanh experts?
    if (o->name == "linear-vs-ffn") {
      std::cout << "\nVerdict (theory: linear beta1 and b at n^(-1/8), tanh every block at n^(-1/4)):\n";
      bool any_resolved = false;
      for (const std::string block : {"beta1", "b", "a", "nu", "c"}) {
        const std::string m = "m.cell." + block;
        for (const std::string init : {" best", "", " near-truth"}) {
          const std::string lin = "linear k=3" + init, tan = "tanh k=3" + init;
          const bool has_lin = by_setting.count(lin) && by_setting[lin].count(m) && by_setting[lin][m].fit.fitted;
          const bool has_tan = by_setting.count(tan) && by_setting[tan].count(m) && by_setting[tan][m].fit.fitted;
          if (!has_lin || !has_tan) continue;
          const auto& a = by_setting[lin][m].fit;
          const auto& b = by_setting[tan][m].fit;
          // The test: the paired bootstrap interval of e(tanh) - e(linear) (both
          // settings simulate from the same seeds and are resampled alike);
          // overlapping intervals of the two exponents do not decide it.
          const auto diff = moerate::exponent_difference(a, b, ro.level);
          const double lo = diff ? diff->ci.low : arma::datum::nan, hi = diff ? diff->ci.high : arma::datum::nan;
          // The theory: tanh faster for beta1 and b (1/4 against 1/8), equal rates (1/4) for a, nu, c.
          const bool theory_differs = block == "beta1" || block == "b";
          std::string v;
          if (!diff) v = "no bootstrap draws to compare";
          else if (lo > 0) v = theory_differs ? "separated: linear slower, as the theory says" : "separated: linear slower (against the theory: equal rates)";
          else if (hi < 0) v = "separated: linear FASTER (against the theory)";
          else v = "not resolved (the difference's interval contains 0)";
          // The verdict rests on the best available estimate of the MLE.
          const bool decisive = init == (any_best ? " best" : "");
          if (decisive && diff && lo > 0 && (block == "beta1" || block == "b")) any_resolved = true;
          std::cout << "  " << std::setw(6) << block
                    << (init.empty() ? " truth-free" : init == " best" ? " best-of   " : " near-truth")
                    << "  linear " << moerate::cli::fixed(a.exponent) << " [" << moerate::cli::fixed(a.ci_low) << ", " << moerate::cli::fixed(a.ci_high) << "]"
                    << "  tanh " << moerate::cli::fixed(b.exponent) << " [" << moerate::cli::fixed(b.ci_low) << ", " << moerate::cli::fixed(b.ci_high) << "]"
                    << "  tanh - linear " << (diff ? moerate::cli::fixed(diff->difference) + " [" + moerate::cli::fixed(lo) + ", " + moerate::cli::fixed(hi) + "]" : std::string("-"))
                    << "  " << v << "\n";
        }
      }
      std::cout << "  => the separation of linear and two-layer experts is "
                << (any_resolved ? "RESOLVED for beta1 or b at this scale"
                                 : "NOT resolved at this scale (see docs/results.md)")
                << "\n";
    }
    moerate::write_json_file(dir + "/rates.json", rates);
    // Figure: one panel per metric (block), every setting on the same axes with its theory line.
    std::vector<moerate::PlotPanel> panels;
    for (const auto& m : metric_order) {
      moerate::PlotPanel p;
      p.title = m.substr(2);
      for (const auto& st : reported) {
        // With best-of settings, the figure shows those (one series per truth).
        if (any_best && !(st.label.size() > 5 && st.label.substr(st.label.size() - 5) == " best")) continue;
        if (!by_setting[st.label].count(m)) continue;
        const Entry& e = by_setting[st.label][m];
        moerate::PlotSeries ser;
        ser.label = st.label;
        ser.data = moerate::loss_table_from_results(table, m, st.label, results);
        ser.fit = e.fit;
        ser.theory = e.theory;
        if (moerate::usable_rows(ser.data, false).size() > 0) p.series.push_back(std::move(ser));
      }
      if (!p.series.empty()) panels.push_back(std::move(p));
    }
    const std::string fig = dir + "/" + o->name + ".png";
    moerate::PlotOptions po;
    po.title = o->name + " (" + o->scale + "): certified replicates, medians with 10-90% bars, fits with 95% bands";
    po.y_label = "error";
    po.columns = std::min<int>(3, int(panels.size()));
    po.shared_y = false;
    po.key = "right";
    moerate::plot_panels(panels, fig, po);
    std::cout << "\nresults " << results << "\nrates   " << dir << "/rates.json\nfigure  " << fig << "\n";
  });
}
