// moerate sweep / merge: run a convergence-rate study from a study file, and
// combine the outputs of shards.
#include <iostream>

#include "cli_common.hpp"
#include "moerate/studies/sweep.hpp"
#include "moerate/io/files.hpp"

void add_sweep_command(CLI::App& app) {
  struct Opts {
    std::string config, out, shard;
    int threads = 0;
    bool resume = false, quiet = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("sweep", "Run a convergence-rate study: simulate, fit and measure over a grid of n");
  cmd->add_option("--config", o->config, "Study file (JSON, see docs/formats.md)")->required();
  cmd->add_option("--out", o->out, "Results CSV (one row per task; appended as tasks finish)")->required();
  cmd->add_option("--threads", o->threads, "Threads (0 = all cores); results do not depend on it")->capture_default_str();
  cmd->add_flag("--resume", o->resume, "Continue an interrupted run: skip the tasks already in --out");
  cmd->add_option("--shard", o->shard, "Run shard i of N (i/N, 0-based), e.g. one per Slurm array task");
  cmd->add_flag("--quiet", o->quiet, "No progress on stderr");
  moerate::cli::set_example(cmd, "moerate sweep --config data/studies/softmax-linear-exact.json --out results.csv --threads 2");
  cmd->callback([o]() {
    o->threads = moerate::cli::configure_threads(o->threads);
    moerate::cli::check_out(o->out, {o->config});
    moerate::SweepOptions so;
    so.threads = o->threads;
    so.resume = o->resume;
    so.progress = !o->quiet;
    if (!o->shard.empty()) {
      const auto slash = o->shard.find('/');
      try {
        if (slash == std::string::npos) throw std::invalid_argument("");
        std::size_t used = 0;
        so.shard = std::stoul(o->shard.substr(0, slash), &used);
        if (used != slash) throw std::invalid_argument("");
        so.n_shards = std::stoul(o->shard.substr(slash + 1), &used);
        if (used != o->shard.size() - slash - 1) throw std::invalid_argument("");
        so.validate();
      } catch (const std::exception&) {
        throw moerate::cli::UsageError("--shard: expected i/N with 0 <= i < N; got '" + o->shard + "'");
      }
    }
    const auto study = moerate::Study::from_json(moerate::read_json_file(o->config), o->config);
    for (std::size_t t = 0; t < study.truths.size(); ++t)
      moerate::cli::print_truth_findings(std::cerr, study.truths[t], "truth '" + study.truth_names[t] + "'",
                                         study.design, "moerate sweep: warning: ");
    std::cout << "study " << study.name << ": " << study.settings.size() << " settings x " << study.n_grid.size()
              << " sizes (" << study.n_grid.front() << ".." << study.n_grid.back() << ") x " << study.replications
              << " replications = " << study.n_tasks() << " tasks, seed " << study.seed;
    if (so.n_shards > 1) std::cout << ", shard " << so.shard << "/" << so.n_shards;
    std::cout << "\n";
    const auto s = moerate::run_sweep(study, o->out, so);
    if (s.tasks_run > 0 && s.tasks_failed == s.tasks_run) {
      std::string msg = "every task failed (" + std::to_string(s.tasks_failed) + "); the first errors:";
      for (const auto& e : s.first_errors) msg += "\n  " + e;
      throw std::runtime_error(msg);
    }
    std::cout << "ran " << s.tasks_run << " tasks (" << s.tasks_skipped << " already done), " << s.tasks_failed
              << " failed, " << s.capped << " at the iteration cap, in " << s.seconds << " s -> " << o->out << "\n";
  });
}

void add_merge_command(CLI::App& app) {
  struct Opts {
    std::vector<std::string> inputs;
    std::string out;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("merge", "Merge sweep results of several shards into one sorted file");
  cmd->add_option("inputs", o->inputs, "Shard result files")->required();
  cmd->add_option("--out", o->out, "Merged results CSV")->required();
  moerate::cli::set_example(cmd, "moerate merge shard-*.csv --out results.csv");
  cmd->callback([o]() {
    moerate::cli::check_out(o->out, o->inputs);
    moerate::merge_results(o->inputs, o->out);
    std::cout << "merged " << o->inputs.size() << " files -> " << o->out << "\n";
  });
}
