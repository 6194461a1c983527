// moerate/io/files.hpp -- reading JSON files and writing any output file.
//
// Every output of moerate goes through write_file_atomic: the text is written
// to a temporary file beside the target, then renamed over it, so a failed
// run never leaves a half-written file nor destroys an earlier one.
//
//   json j = read_json_file("truth.json");     // InputError with line:column
//   write_file_atomic("fit.json", j.dump(2));
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace moerate {

using json = nlohmann::json;

/// Read a JSON file, with file:line:column in parse errors.
json read_json_file(const std::string& path);
/// Write text atomically: a temporary file beside `path`, then rename.
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace moerate
