// moerate/core/json_fields.hpp -- typed access to fields of JSON objects in
// model and study files, with messages that name the JSON path.
//
//   double b = json_number(j, "b", "experts[0].expert");   // throws InvalidArgument
//   arma::vec a = json_vector(j, "a", d, "experts[0].expert");
#pragma once

#include <armadillo>
#include <nlohmann/json.hpp>
#include <string>

namespace moerate {

using json = nlohmann::json;

/// obj[key] as a finite number; `where` is the JSON path of obj, for messages.
double json_number(const json& obj, const std::string& key, const std::string& where);
/// obj[key] as an array of `size` finite numbers.
arma::vec json_vector(const json& obj, const std::string& key, std::size_t size, const std::string& where);

}  // namespace moerate
