#include "moerate/core/json_fields.hpp"

#include <cmath>

#include "moerate/core/error.hpp"

namespace moerate {

double json_number(const json& obj, const std::string& key, const std::string& where) {
  if (!obj.is_object()) throw InvalidArgument(where + ": expected an object; got " + obj.dump());
  if (!obj.contains(key)) throw InvalidArgument(where + ": missing \"" + key + "\"");
  const json& v = obj[key];
  if (!v.is_number()) throw InvalidArgument(where + "." + key + ": expected a number; got " + v.dump());
  const double x = v.get<double>();
  if (!std::isfinite(x)) throw InvalidArgument(where + "." + key + ": must be finite; got " + v.dump());
  return x;
}

arma::vec json_vector(const json& obj, const std::string& key, std::size_t size,
                      const std::string& where) {
  if (!obj.is_object()) throw InvalidArgument(where + ": expected an object; got " + obj.dump());
  if (!obj.contains(key)) throw InvalidArgument(where + ": missing \"" + key + "\"");
  const json& v = obj[key];
  if (!v.is_array() || v.size() != size)
    throw InvalidArgument(where + "." + key + ": expected an array of " + std::to_string(size) +
                          " numbers (the data dimension); got " + v.dump());
  arma::vec out(size);
  for (std::size_t u = 0; u < size; ++u) {
    if (!v[u].is_number())
      throw InvalidArgument(where + "." + key + "[" + std::to_string(u) + "]: expected a number; got " +
                            v[u].dump());
    out[u] = v[u].get<double>();
    if (!std::isfinite(out[u]))
      throw InvalidArgument(where + "." + key + "[" + std::to_string(u) + "]: must be finite");
  }
  return out;
}

}  // namespace moerate
