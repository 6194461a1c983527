// apps/main.cpp -- the moerate program: `moerate <command> [options]`.
#include <malloc.h>

#include <iostream>

#include "cli_common.hpp"
#include "moerate/core/error.hpp"
#include "moerate/core/parallel.hpp"
#include "moerate/io/files.hpp"

// One line per subcommand (each defined in apps/cmd_NAME.cpp).
void add_simulate_command(CLI::App&);
void add_loglik_command(CLI::App&);
void add_fit_command(CLI::App&);
void add_predict_command(CLI::App&);
void add_bench_command(CLI::App&);
void add_list_command(CLI::App&);
void add_identify_command(CLI::App&);
void add_bootstrap_command(CLI::App&);
void add_loss_command(CLI::App&);
void add_rates_command(CLI::App&);
void add_plot_command(CLI::App&);
void add_sweep_command(CLI::App&);
void add_merge_command(CLI::App&);
void add_study_command(CLI::App&);
void add_plotfit_command(CLI::App&);
void add_check_truth_command(CLI::App&);
void add_select_command(CLI::App&);
void add_dendrogram_command(CLI::App&);

int main(int argc, char** argv) {
  moerate::prefer_passive_openmp(argv);  // idle threads sleep (may re-execute once)
  moerate::cli::single_threaded_blas();  // no spinning BLAS pool (cli_common.cpp)
  // Blocks of 16 MiB and more are mapped (and returned when freed), smaller
  // ones come from the heap and are reused. At 32 MiB (the largest value glibc
  // accepts) the k x n matrices of a fit at n = 1e6, k = 4 (30.5 MiB) came from
  // the heap and fragmented it: peak resident size 240 MB against 172 MB now
  // (the data: 72 MB), at the same CPU time within 1% (docs/performance.md
  // round 7). EM recycles its responsibility matrix, so few such blocks are
  // mapped and zero-filled per iteration.
  mallopt(M_MMAP_THRESHOLD, 16 << 20);
  mallopt(M_TRIM_THRESHOLD, 16 << 20);  // free heap above 16 MiB at its top goes back (was 1 GiB: 176 -> 160 MB)
  CLI::App app{"moerate: estimate mixtures of experts and measure how fast the estimates converge"};
  app.name("moerate");
  app.set_version_flag("--version", std::string("moerate ") + MOERATE_VERSION);
  app.require_subcommand(1);
  app.footer(
      "Run 'moerate COMMAND --help' for a command's options and a worked example.\n"
      "Example:\n  moerate simulate --model data/experiment-a.json --n 1000 --seed 1 --out sim.csv");

  add_simulate_command(app);
  add_loglik_command(app);
  add_fit_command(app);
  add_predict_command(app);
  add_bench_command(app);
  add_list_command(app);
  add_identify_command(app);
  add_bootstrap_command(app);
  add_loss_command(app);
  add_rates_command(app);
  add_plot_command(app);
  add_sweep_command(app);
  add_merge_command(app);
  add_study_command(app);
  add_plotfit_command(app);
  add_check_truth_command(app);
  add_select_command(app);
  add_dendrogram_command(app);

  moerate::install_cleanup_handlers();  // temporary files go away on SIGINT/SIGTERM
  std::string cmd_name = "moerate";
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ConversionError& e) {
    // CLI11: "Could not convert: --tol = abc" -> our words.
    for (auto* sub : app.get_subcommands()) cmd_name = "moerate " + sub->get_name();
    std::string what = e.what();
    const std::string prefix = "Could not convert: ";
    if (what.rfind(prefix, 0) == 0) {
      what = what.substr(prefix.size());
      const auto eq = what.find(" = ");
      if (eq != std::string::npos) what = what.substr(0, eq) + ": cannot read '" + what.substr(eq + 3) + "' as a value of this option (a number?)";
    }
    std::cerr << cmd_name << ": error: " << what << "\n";
    return 2;
  } catch (const CLI::ParseError& e) {
    for (auto* sub : app.get_subcommands()) cmd_name = "moerate " + sub->get_name();
    std::cerr << cmd_name << ": error: " << e.what() << "\n";
    if (app.get_subcommands().empty())
      std::cerr << "Run 'moerate --help' for the list of commands.\n";
    return 2;
  } catch (const moerate::cli::UsageError& e) {
    for (auto* sub : app.get_subcommands()) cmd_name = "moerate " + sub->get_name();
    std::cerr << cmd_name << ": error: " << e.what() << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    for (auto* sub : app.get_subcommands()) cmd_name = "moerate " + sub->get_name();
    std::cerr << cmd_name << ": error: out of memory: the problem is too large for this machine "
                             "(reduce n, d, k or the number of replicates)\n";
    return 1;
  } catch (const std::exception& e) {
    for (auto* sub : app.get_subcommands()) cmd_name = "moerate " + sub->get_name();
    std::cerr << cmd_name << ": error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
