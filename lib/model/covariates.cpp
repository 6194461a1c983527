#include "moerate/model/covariates.hpp"

#include <algorithm>
#include <set>

#include "moerate/core/error.hpp"

namespace moerate {

namespace {

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& c : v) s += (s.empty() ? "" : ",") + c;
  return s;
}

void check_list(const std::vector<std::string>& v, const std::string& what) {
  if (v.empty()) throw InvalidArgument("covariates: the " + what + " columns are empty (need at least one)");
  std::set<std::string> seen;
  for (const auto& c : v) {
    if (c.empty()) throw InvalidArgument("covariates: an empty " + what + " column name");
    if (!seen.insert(c).second) throw InvalidArgument("covariates: " + what + " column '" + c + "' is given twice");
  }
}

bool is_identity(const arma::uvec& r, std::size_t d) {
  if (r.n_elem != d) return false;
  for (std::size_t i = 0; i < d; ++i)
    if (r[i] != i) return false;
  return true;
}

}  // namespace

Covariates Covariates::from_names(const std::vector<std::string>& expert, const std::vector<std::string>& gate) {
  check_list(expert, "expert");
  check_list(gate, "gate");
  if (expert == gate) return Covariates();
  std::vector<std::string> cols = expert;
  for (const auto& c : gate)
    if (std::find(cols.begin(), cols.end(), c) == cols.end()) cols.push_back(c);
  auto rows_of = [&](const std::vector<std::string>& v) {
    arma::uvec r(v.size());
    for (std::size_t i = 0; i < v.size(); ++i)
      r[i] = static_cast<arma::uword>(std::find(cols.begin(), cols.end(), v[i]) - cols.begin());
    return r;
  };
  return from_rows(cols, rows_of(expert), rows_of(gate));
}

Covariates Covariates::from_rows(std::vector<std::string> columns, arma::uvec expert_rows, arma::uvec gate_rows) {
  check_list(columns, "data");
  const std::size_t d = columns.size();
  for (const auto* r : {&expert_rows, &gate_rows}) {
    const std::string what = r == &expert_rows ? "expert" : "gate";
    if (r->is_empty()) throw InvalidArgument("covariates: the " + what + " columns are empty (need at least one)");
    std::set<arma::uword> seen;
    for (arma::uword i : *r) {
      if (i >= d) fail("covariates", what + " row", "must be below the number of columns " + std::to_string(d), i);
      if (!seen.insert(i).second) throw InvalidArgument("covariates: " + what + " column '" + columns[i] + "' is given twice");
    }
  }
  for (std::size_t i = 0; i < d; ++i)
    if (!arma::any(expert_rows == i) && !arma::any(gate_rows == i))
      throw InvalidArgument("covariates: column '" + columns[i] + "' is read by neither the gate nor the experts");
  Covariates c;
  if (is_identity(expert_rows, d) && is_identity(gate_rows, d)) return c;  // shared
  c.columns_ = std::move(columns);
  c.expert_ = std::move(expert_rows);
  c.gate_ = std::move(gate_rows);
  return c;
}

Covariates Covariates::from_json(const json& j, const std::string& where) {
  auto names = [&](const char* key, bool required) {
    std::vector<std::string> v;
    if (!j.contains(key)) {
      if (required) throw InvalidArgument(where + ": missing \"" + key + "\" (an array of column names)");
      return v;
    }
    const json& a = j[key];
    if (!a.is_array() || a.empty())
      throw InvalidArgument(where + "." + key + ": expected a non-empty array of column names; got " + a.dump());
    for (const auto& s : a) {
      if (!s.is_string()) throw InvalidArgument(where + "." + key + ": expected column names (strings); got " + s.dump());
      v.push_back(s.get<std::string>());
    }
    return v;
  };
  if (!j.is_object())
    throw InvalidArgument(where + ": expected an object {\"experts\": [...], \"gate\": [...]}; got " + j.dump());
  for (const auto& [key, val] : j.items())
    if (key != "columns" && key != "experts" && key != "gate")
      throw InvalidArgument(where + ": unknown key \"" + key + "\" (expected columns, experts, gate)");
  try {
    const auto expert = names("experts", true), gate = names("gate", true);
    std::vector<std::string> cols = names("columns", false);
    if (cols.empty()) return from_names(expert, gate);
    check_list(cols, "data");
    auto rows_of = [&](const std::vector<std::string>& v, const std::string& what) {
      arma::uvec r(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) {
        const auto it = std::find(cols.begin(), cols.end(), v[i]);
        if (it == cols.end())
          throw InvalidArgument(what + " column '" + v[i] + "' is not among the columns " + joined(cols));
        r[i] = static_cast<arma::uword>(it - cols.begin());
      }
      return r;
    };
    return from_rows(cols, rows_of(expert, "expert"), rows_of(gate, "gate"));
  } catch (const InvalidArgument& e) {
    std::string w = e.what();
    if (w.rfind("covariates: ", 0) == 0) w = w.substr(12);
    if (w.rfind(where, 0) == 0) throw;
    throw InvalidArgument(where + ": " + w);
  }
}

json Covariates::to_json() const {
  if (shared()) return json();
  return json{{"columns", columns_}, {"experts", expert_columns()}, {"gate", gate_columns()}};
}

std::vector<std::string> Covariates::gate_columns() const {
  std::vector<std::string> v;
  for (arma::uword i : gate_) v.push_back(columns_[i]);
  return v;
}

std::vector<std::string> Covariates::expert_columns() const {
  std::vector<std::string> v;
  for (arma::uword i : expert_) v.push_back(columns_[i]);
  return v;
}

std::string Covariates::describe() const {
  if (shared()) return "gate and experts on every covariate";
  return "gate " + joined(gate_columns()) + "; experts " + joined(expert_columns());
}

bool Covariates::checked(const arma::mat& X) const {
  if (shared()) return true;
  if (X.n_rows != columns_.size())
    throw InvalidArgument("covariates: the data have " + std::to_string(X.n_rows) + " covariate rows; the model reads " +
                          std::to_string(columns_.size()) + " columns (" + joined(columns_) + "; " + describe() + ")");
  return false;
}

bool Covariates::operator==(const Covariates& o) const {
  if (shared() || o.shared()) return shared() == o.shared();
  auto same = [](const arma::uvec& a, const arma::uvec& b) { return a.n_elem == b.n_elem && arma::all(a == b); };
  return columns_ == o.columns_ && same(expert_, o.expert_) && same(gate_, o.gate_);
}

}  // namespace moerate
