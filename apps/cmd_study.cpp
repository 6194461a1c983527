// moerate study: built-in convergence-rate studies (experiments A and B of
// the spec): sweep, rate table with intervals beside the theory, figures.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli_common.hpp"
#include "moerate/core/error.hpp"
#include "moerate/plot/plot.hpp"
#include "moerate/studies/rates.hpp"
#include "moerate/studies/builtin_studies.hpp"
#include "moerate/studies/sweep.hpp"
#include "moerate/studies/theory.hpp"
#include "moerate/io/files.hpp"

namespace {

using moerate::json;

std::string fmt(double v, int prec = 3) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(prec) << v;
  return s.str();
}

}  // namespace

void add_study_command(CLI::App& app) {
  struct Opts {
    std::string name, scale = "quick", out;
    int threads = 0, bootstrap = 1000;
    bool print_config = false, quiet = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("study", "Run a built-in convergence-rate study: results, rate table and figures");
  cmd->add_option("name", o->name, "softmax-linear-exact (A1) | softmax-linear-over (A2) | linear-vs-ffn (B)")->required();
  cmd->add_option("--scale", o->scale, "quick (minutes) or paper (200 sizes in [1e2, 1e5], 40 replications)")
      ->capture_default_str();
  cmd->add_option("--out", o->out, "Output directory (default out/NAME-SCALE)");
  cmd->add_option("--threads", o->threads, "Threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--bootstrap", o->bootstrap, "Bootstrap resamples for the slope intervals")->capture_default_str()->check(moerate::cli::whole(0, 1000000));
  cmd->add_flag("--print-config", o->print_config, "Print the study file and exit (edit it and run 'moerate sweep')");
  cmd->add_flag("--quiet", o->quiet, "No progress on stderr");
  moerate::cli::set_example(cmd, "moerate study linear-vs-ffn --scale quick --out out/linear-vs-ffn");
  cmd->callback([o]() {
    namespace fs = std::filesystem;
    o->threads = moerate::cli::configure_threads(o->threads);
    moerate::cli::check_range("--bootstrap", o->bootstrap, 0, 1000000);
    json cfg;
    try {
      cfg = moerate::builtin_study_config(o->name, o->scale);
    } catch (const moerate::InvalidArgument& e) {
      throw moerate::cli::UsageError(e.what());
    }
    if (o->print_config) {
      std::cout << cfg.dump(2) << "\n";
      return;
    }
    const std::string dir = o->out.empty() ? "out/" + o->name + "-" + o->scale : o->out;
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
      if (old != cfg)
        throw std::runtime_error(dir + " holds a different study (" + cfg_path + "); choose another --out");
      resume = fs::exists(results);
    }
    moerate::write_file_atomic(cfg_path, cfg.dump(2) + "\n");
    const moerate::Study study = moerate::Study::from_json(cfg, cfg_path);
    std::cout << "study " << o->name << " (" << o->scale << "): " << study.settings.size() << " settings x "
              << study.n_grid.size() << " sizes in [" << study.n_grid.front() << ", " << study.n_grid.back() << "] x "
              << study.replications << " replications; starts that do not use the truth (k-means)"
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
    std::cout << "sweep: " << sum.tasks_run << " fits in " << fmt(sum.seconds, 1) << " s (" << sum.tasks_skipped
              << " resumed), " << sum.tasks_failed << " failed, " << sum.capped << " at the iteration cap, " << sum.uncertified << " not certified\n\n";

    // Rates with bootstrap intervals beside the theory.
    const moerate::CsvTable table = moerate::read_csv_table(results);
    moerate::RateFitOptions ro;
    ro.bootstrap = o->bootstrap;
    json rates = json::object();
    std::vector<moerate::PlotPanel> panels;
    std::cout << "Convergence rates: loss ~ n^(-e), e fitted on every replicate, " << int(ro.level * 100)
              << "% bootstrap interval (replications resampled within n)\n";
    std::cout << std::left << std::setw(14) << "setting" << std::setw(14) << "metric" << std::setw(8) << "e"
              << std::setw(20) << "interval" << std::setw(9) << "theory" << std::setw(10) << "agrees?"
              << "used/capped/uncert/failed\n";
    for (const auto& st : study.settings) {
      const auto th = moerate::theory_exponents(study.truths[st.truth_index], st.fit, study.voronoi.rbar);
      const auto metrics = moerate::report_metrics(table, study, st);
      for (const auto& m : metrics) {
        const auto lt = moerate::loss_table_from_results(table, m, st.label, results);
        const auto f = moerate::fit_rate(lt, ro);
        json jf = f.to_json();
        if (th.count(m)) jf["theory"] = th.at(m);
        rates[st.label][m] = jf;
        std::cout << std::left << std::setw(14) << st.label << std::setw(14) << m.substr(2);
        if (!f.fitted) {
          std::cout << "not fitted: " << f.note << "\n";
          continue;
        }
        std::string agree = "-";
        if (th.count(m)) agree = (th.at(m) >= f.ci_low && th.at(m) <= f.ci_high) ? "yes" : "no";
        std::cout << std::setw(8) << fmt(f.exponent) << std::setw(20)
                  << ("[" + fmt(f.ci_low) + ", " + fmt(f.ci_high) + "]") << std::setw(9)
                  << (th.count(m) ? moerate::exponent_label(th.at(m)) : "-") << std::setw(10) << agree << f.n_used
                  << "/" << f.n_capped << "/" << f.n_uncertified << "/" << f.n_failed << "\n";
      }
      std::map<std::string, double> theory_plot;
      for (const auto& m : metrics)
        if (th.count(m)) theory_plot[m] = th.at(m);
      panels.push_back(moerate::panel_from_results(table, st.label, metrics, theory_plot, ro, st.label, false, results));
    }
    moerate::write_json_file(dir + "/rates.json", rates);
    const std::string fig = dir + "/" + o->name + ".png";
    moerate::PlotOptions po;
    po.title = o->name + " (" + o->scale + " scale): per-replicate points, medians with 10-90% bars, fit with 95% band";
    po.y_label = "error";
    moerate::plot_panels(panels, fig, po);
    std::cout << "\nresults " << results << "\nrates   " << dir << "/rates.json\nfigure  " << fig << "\n";
  });
}
