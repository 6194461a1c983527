// moerate/io/files.hpp -- reading JSON files and writing any output file.
//
// Every output of moerate goes through write_file_atomic: the text is written
// to a temporary file beside the target, then renamed over it, so a failed
// run never leaves a half-written file nor destroys an earlier one.
//
// Output policy (check_output_path, called by write_file_atomic and early by
// the command line): an output is a regular file or a new name in an existing
// directory. A directory, a symbolic link, a device, FIFO or socket, or a file
// that this process read as an input (every reader registers its path with
// note_input) is refused with an InputError, and nothing is touched.
//
// Temporary files are registered while they exist; install_cleanup_handlers()
// (called by main) removes them on SIGINT and SIGTERM.
//
//   json j = read_json_file("truth.json");     // InputError with line:column
//   write_file_atomic("fit.json", j.dump(2));
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moerate {

using json = nlohmann::json;

/// Read a JSON file, with file:line:column in parse errors (also for numbers
/// that overflow a double, e.g. 1e999).
json read_json_file(const std::string& path);
/// Parse JSON text; `name` is used in messages (file:line:column).
json parse_json_text(const std::string& text, const std::string& name);
/// Read a whole file as text; InputError if it is missing, a directory or unreadable.
std::string read_text_file(const std::string& path);
/// The file opened for reading (binary), with the same checks and messages as
/// read_text_file (a directory, a missing or unreadable file); noted as an input.
std::ifstream open_text_file(const std::string& path);

/// Remember that `path` is an input of this run (outputs may not replace it).
void note_input(const std::string& path);
/// Refuse an output path that is not a regular file (or a new name), or that
/// is one of `inputs` or of the files noted with note_input. Touches nothing.
void check_output_path(const std::string& path, const std::vector<std::string>& inputs = {},
                       bool allow_noted_inputs = false);

/// Write text atomically: a temporary file beside `path`, then rename.
/// `replaces_input`: the target may be a file this run read (sweep --resume).
void write_file_atomic(const std::string& path, const std::string& text, bool replaces_input = false);
/// Write a JSON document atomically; every number must be finite (the path of
/// the first non-finite value is named in the InvalidArgument otherwise).
void write_json_file(const std::string& path, const json& j);
/// Throws InvalidArgument naming the first non-finite number in j ("where.key[i]").
void check_json_finite(const json& j, const std::string& where);

/// Remove registered temporary files on SIGINT/SIGTERM, then die by the signal.
void install_cleanup_handlers();
/// Register / unregister a temporary file for removal on a signal.
void register_temp_file(const std::string& path);
void unregister_temp_file(const std::string& path);

}  // namespace moerate
