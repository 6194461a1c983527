// moerate study for the scenario studies (experiments.md E): latent-clusters,
// cluster-centres, expressive-power. Runs the tasks (studies/scenarios), prints
// per (setting, n) the mean of each metric with a bootstrap interval and, per
// series, the fitted slope against n (or k), and draws one figure per panel.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include "cli_common.hpp"
#include "moerate/core/error.hpp"
#include "moerate/io/files.hpp"
#include "moerate/plot/plot.hpp"
#include "moerate/studies/rates.hpp"
#include "moerate/studies/scenarios.hpp"

void run_scenario_study_command(const std::string& name, const std::string& scale, const std::string& out, int threads,
                                int bootstrap, bool print_config, bool quiet) {
  namespace fs = std::filesystem;
  const auto num = [](double v) { return moerate::cli::significant(v, 4); };
  moerate::ScenarioStudy study;
  try {
    study = moerate::scenario_study(name, scale);
  } catch (const moerate::InvalidArgument& e) {
    throw moerate::cli::UsageError(e.what());
  }
  const moerate::json cfg = study.to_json();
  if (print_config) {
    std::cout << cfg.dump(2) << "\n";
    return;
  }
  const std::string dir = out.empty() ? "out/" + name + "-" + scale : out;
  {
    std::error_code ec;
    const auto st = fs::symlink_status(dir, ec);
    if (fs::exists(st) && !fs::is_directory(st))
      throw moerate::cli::UsageError("--out: " + dir + " exists and is not a directory (the study writes several files into a directory)");
    fs::create_directories(dir, ec);
    if (ec) throw std::runtime_error(dir + ": cannot create the output directory: " + ec.message());
  }
  const std::string cfg_path = dir + "/study.json", results = dir + "/results.csv";
  bool resume = false;
  if (fs::exists(cfg_path)) {
    if (moerate::read_json_file(cfg_path) != cfg)
      throw std::runtime_error(dir + " holds a different study (" + cfg_path + "); choose another --out");
    resume = fs::exists(results);
  } else {
    moerate::write_file_atomic(cfg_path, cfg.dump(2) + "\n");
  }
  std::size_t n_tasks = 0;
  for (const auto& st : study.settings) n_tasks += moerate::setting_sizes(study, st).size() * study.replications;
  std::cout << "study " << name << " (" << scale << "): " << study.settings.size() << " settings, " << n_tasks
            << " fits (" << study.replications << " replications), test samples of " << study.n_test
            << "; EM on the likelihood, k-means starts" << (resume ? "; resuming" : "") << "\n";
  moerate::SweepOptions so;
  so.threads = threads;
  so.resume = resume;
  so.progress = !quiet;
  const auto sum = moerate::run_scenario_study(study, results, so);
  if (sum.tasks_run > 0 && sum.tasks_failed == sum.tasks_run) {
    std::string msg = "every task failed (" + std::to_string(sum.tasks_failed) + "); the first errors:";
    for (const auto& e : sum.first_errors) msg += "\n  " + e;
    throw std::runtime_error(msg);
  }
  std::cout << "fits: " << sum.tasks_run << " in " << moerate::cli::significant(sum.seconds, 3) << " s (" << sum.tasks_skipped
            << " resumed), " << sum.tasks_failed << " failed, " << sum.capped << " at the iteration cap\n";
  for (const auto& e : sum.first_errors) std::cout << "  failed: " << e << "\n";

  const moerate::CsvTable table = moerate::read_csv_table(results);
  const auto cells = moerate::scenario_cells(study, table, bootstrap);
  moerate::json summary;
  summary["cells"] = moerate::json::array();
  std::cout << "\nMean over replications with 95% bootstrap interval (replications resampled)\n";
  std::cout << std::left << std::setw(28) << "setting" << std::setw(8) << "n" << std::setw(5) << "k" << std::setw(17)
            << "metric" << std::setw(11) << "mean" << std::setw(24) << "interval" << std::setw(11) << "median" << "reps\n";
  for (const auto& c : cells) {
    std::cout << std::left << std::setw(28) << c.setting << std::setw(8) << c.n << std::setw(5) << c.k << std::setw(17)
              << c.metric << std::setw(11) << num(c.mean) << std::setw(24)
              << ("[" + num(c.ci_low) + ", " + num(c.ci_high) + "]") << std::setw(11) << num(c.median) << c.reps << "\n";
    summary["cells"].push_back({{"setting", c.setting}, {"n", c.n}, {"k", c.k}, {"metric", c.metric},
                                {"mean", std::isfinite(c.mean) ? moerate::json(c.mean) : moerate::json(nullptr)},
                                {"ci_low", std::isfinite(c.ci_low) ? moerate::json(c.ci_low) : moerate::json(nullptr)},
                                {"ci_high", std::isfinite(c.ci_high) ? moerate::json(c.ci_high) : moerate::json(nullptr)},
                                {"median", std::isfinite(c.median) ? moerate::json(c.median) : moerate::json(nullptr)},
                                {"reps", c.reps}});
  }
  // Slopes per series and figures per panel.
  moerate::RateFitOptions ro;
  ro.bootstrap = bootstrap;
  std::map<std::string, std::vector<moerate::PlotPanel>> panels;  // panel -> one PlotPanel per metric
  std::map<std::string, std::string> panel_axis;
  std::vector<std::string> panel_order, series_order;
  for (const auto& st : study.settings) {
    if (std::find(panel_order.begin(), panel_order.end(), st.panel) == panel_order.end()) panel_order.push_back(st.panel);
    if (std::find(series_order.begin(), series_order.end(), st.series) == series_order.end()) series_order.push_back(st.series);
    panel_axis[st.panel] = st.x_axis;
  }
  std::cout << "\nSlopes: metric ~ x^(-e) over replicates (x = n, or k the number of experts), 95% bootstrap interval\n";
  summary["slopes"] = moerate::json::array();
  for (const auto& panel : panel_order) {
    for (const auto& m : study.metrics) {
      moerate::PlotPanel p;
      p.title = (m == "cosine" || m == "routing_accuracy" ? "1 - " + m : m) + (panel_order.size() > 1 ? " (" + panel + ")" : "");
      for (const auto& series : series_order) {
        bool in_panel = false;
        for (const auto& st : study.settings) in_panel = in_panel || (st.series == series && st.panel == panel);
        if (!in_panel) continue;
        moerate::PlotSeries ser;
        ser.label = series;
        ser.data = moerate::scenario_series_table(study, table, series, m);
        if (ser.data.size() == 0) continue;
        const std::string x = panel_axis[panel];
        if (m == "cosine" || m == "routing_accuracy")  // tend to 1: their complements are the errors that decay
          for (auto& v : ser.data.loss) v = 1 - v;
        ser.fit = moerate::fit_rate(ser.data, ro);
        std::cout << "  " << std::left << std::setw(28) << series << std::setw(22) << (m == "cosine" || m == "routing_accuracy" ? "1 - " + m : m)
                  << "vs " << x << ": ";
        if (ser.fit.fitted)
          std::cout << "e = " << moerate::cli::significant(ser.fit.exponent, 3) << " [" << moerate::cli::significant(ser.fit.ci_low, 3) << ", " << moerate::cli::significant(ser.fit.ci_high, 3)
                    << "]\n";
        else
          std::cout << "not fitted: " << ser.fit.note << "\n";
        moerate::json js = {{"series", series}, {"metric", m}, {"x", x}, {"fitted", ser.fit.fitted}};
        if (ser.fit.fitted) js["exponent"] = ser.fit.exponent, js["ci_low"] = ser.fit.ci_low, js["ci_high"] = ser.fit.ci_high;
        summary["slopes"].push_back(js);
        p.series.push_back(std::move(ser));
      }
      if (!p.series.empty()) panels[panel].push_back(std::move(p));
    }
  }
  moerate::write_json_file(dir + "/summary.json", summary);
  std::vector<std::string> figures;
  for (const auto& panel : panel_order) {
    if (panels[panel].empty()) continue;
    const std::string fig = dir + "/" + name + (panel_order.size() > 1 ? "-" + panel : "") + ".png";
    moerate::PlotOptions po;
    po.title = name + " (" + scale + (panel_order.size() > 1 ? ", " + panel : std::string()) +
               "): replicates, medians with 10-90% bars, power-law fits";
    po.x_label = panel_axis[panel] == "k" ? "number of experts k" : "sample size n";
    po.y_label = "metric";
    po.columns = std::min<int>(3, int(panels[panel].size()));
    po.shared_y = false;
    po.key = "right";
    moerate::plot_panels(panels[panel], fig, po);
    figures.push_back(fig);
  }
  std::cout << "\nresults " << results << "\nsummary " << dir << "/summary.json\n";
  for (const auto& f : figures) std::cout << "figure  " << f << "\n";
}
