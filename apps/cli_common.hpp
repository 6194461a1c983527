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

/// Adds --seed: a non-negative integer below 2^64, parsed with our own message.
CLI::Option* add_seed_option(CLI::App* cmd, std::uint64_t& seed, const std::string& help);

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

namespace moerate {
struct Dataset;
}

namespace moerate::cli {

/// Read the data of a model: the covariate and response columns are --x and
/// --y when given, else the ones the model file records ("fit": "x_columns",
/// "y_column", written by fit and select), else the defaults (y, all others).
/// A recorded column missing from the data is an error naming the column, the
/// model file and how to override it.
Dataset read_data_for_model(const json_t& model_file, const std::string& model_path, const std::string& data_path,
                            const std::vector<std::string>& x, const std::string& y, bool require_y);

}  // namespace moerate::cli

