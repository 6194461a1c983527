// apps/cli_common.hpp -- shared pieces of the moerate command line.
//
// Each subcommand lives in its own file apps/cmd_NAME.cpp and defines
//     void add_NAME_command(CLI::App& app);
// which creates the subcommand (with a worked example in its footer) and sets
// its callback. main.cpp lists them in one table. Callbacks throw:
//   UsageError          -> "moerate CMD: error: ..." exit 2
//   anything else       -> "moerate CMD: error: ..." exit 1
// Human summaries go to stdout; machine-readable results to files (written
// atomically: write_file_atomic in moerate/model.hpp).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moerate::cli {

using json_t = nlohmann::json;

/// Bad flags or flag combinations: exit code 2.
class UsageError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Adds the "Example:" footer shown by --help.
inline void set_example(CLI::App* cmd, const std::string& example) {
  cmd->footer("Example:\n  " + example);
}

/// Most threads accepted; larger --threads values are capped (with a note on stderr).
inline constexpr int kMaxThreads = 256;

/// One BLAS thread, and OpenBLAS's idle thread pool (started when the library
/// loads unless OPENBLAS_NUM_THREADS=1) shut down: called first thing in main.
void single_threaded_blas();
/// Number of threads: 0 -> OpenMP default. Applies omp_set_num_threads and
/// makes OpenBLAS single-threaded inside parallel regions. A negative value
/// is a UsageError; more than kMaxThreads is capped with a note. Returns the
/// number to use.
int configure_threads(int threads);

/// Refuse --out (InputError, exit 1) before any work when it is a directory,
/// symbolic link, device, or one of `inputs` (see moerate::check_output_path).
void check_out(const std::string& out, const std::vector<std::string>& inputs, const std::string& option = "--out");

/// A numeric option that must be finite and within [lo, hi] (UsageError naming the option).
void check_range(const std::string& option, double value, double lo, double hi);

/// A whole number in [lo, hi], checked on the text before conversion (so that
/// "-1" is never wrapped around to 2^64 - 1), with our own message.
CLI::Validator whole(long long lo, long long hi);

/// v in fixed notation with `digits` decimals (as printf's "%.*f").
std::string fixed(double v, int digits = 3);

/// v with `digits` significant digits (an ostream's default notation); NaN as `nan_text`.
std::string significant(double v, int digits, const char* nan_text = "nan");

/// Adds --seed: a non-negative integer below 2^64, parsed with our own message.
CLI::Option* add_seed_option(CLI::App* cmd, std::uint64_t& seed, const std::string& help);

}  // namespace moerate::cli

#include "moerate/estimators/em.hpp"

namespace moerate::cli {

/// The EM stopping and M-step options fit and select share: --max-iter,
/// --abs-tol, --score-tol, --tol, --accelerate, --ridge, --variance-floor,
/// --gate-steps, --polish-every.
struct EmCliOptions {
  int max_iter = EMOptions{}.max_iter;
  double tol = 0, abs_tol = EMOptions{}.abs_tol, score_tol = EMOptions{}.score_tol;
  double ridge = 0.0, variance_floor = 1e-6;
  std::string accelerate = "squarem-newton";
  int gate_steps = GateMStepOptions{}.max_steps;  // 0 = the gate family's default
  int polish_every = EMOptions{}.polish_every;
};
void add_em_options(CLI::App* cmd, EmCliOptions& o);
/// Range checks (UsageError naming the option), then the values into `em`
/// (an unknown --accelerate is a UsageError).
void apply_em_options(const EmCliOptions& o, EMOptions& em);
/// --prune-factor (fit.hpp, FitOptions::prune_factor), for the commands that fit several starts.
CLI::Option* add_prune_option(CLI::App* cmd, double& prune_factor);

}  // namespace moerate::cli

namespace moerate {
class GaussianMoE;
}

namespace moerate::cli {

/// One warning line per finding of check_truth (cmd_check_truth.cpp), used by
/// simulate, sweep and study: "<prefix><source>: <message>".
void print_truth_findings(std::ostream& os, const GaussianMoE& truth, const std::string& source,
                          const std::string& design, const std::string& prefix);

}  // namespace moerate::cli

#include "moerate/io/csv.hpp"
#include "moerate/model/covariates.hpp"

namespace moerate::cli {

/// Read the data of a model: the covariate and response columns are --x and
/// --y when given, else the ones the model file records ("fit": "x_columns",
/// "y_column", written by fit and select), else the defaults (y, all others).
/// A recorded column missing from the data is an error naming the column, the
/// model file and how to override it.
/// A model with gate covariates ("covariates" in the model file) reads the
/// columns it names instead (then --x, when given, renames them in order).
Dataset read_data_for_model(const json_t& model_file, const std::string& model_path, const std::string& data_path,
                            const std::vector<std::string>& x, const std::string& y, bool require_y);

/// --gate-x beside --x (fit, select, bootstrap): adds the option to cmd.
CLI::Option* add_gate_x_option(CLI::App* cmd, std::vector<std::string>& gate_x);

/// The data of fit, select and bootstrap: the experts read --x (default every
/// column but the response), the gate --gate-x (default the same columns). X is
/// the union, the expert columns first then the gate-only ones, and covariates
/// says which rows each part reads (shared when the lists are equal). A --gate-x
/// column missing from the data, the response, an empty name or a repeated one is
/// an error naming --gate-x and the column.
struct DesignData {
  Dataset data;
  Covariates covariates;
  std::vector<std::string> x_columns, gate_x_columns;  // as recorded in fit.x_columns, fit.gate_x_columns
};
DesignData read_design_data(const std::string& data_path, const std::vector<std::string>& x, bool gate_x_given,
                            const std::vector<std::string>& gate_x, const std::string& y);

}  // namespace moerate::cli

