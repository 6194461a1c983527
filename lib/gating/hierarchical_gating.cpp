#include "moerate/gating/hierarchical_gating.hpp"

#include "moerate/core/error.hpp"

namespace moerate {

namespace {

/// "expert3.beta0" -> prefix + "beta0" (strip the leading "expert<N>.").
std::string strip_expert_prefix(const std::string& name) {
  const auto dot = name.find('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

}  // namespace

HierarchicalGating::HierarchicalGating(std::size_t k, std::size_t d, std::size_t groups, const std::string& outer,
                                       const std::string& inner)
    : Gating(k, d), groups_(groups), outer_name_(outer), inner_name_(inner) {
  for (const auto& level : {outer, inner})
    if (level != "softmax" && level != "laplace")
      throw InvalidArgument("gating hierarchical: each level must be softmax or laplace; got '" + level + "'");
  if (groups < 1 || k % groups != 0)
    throw InvalidArgument("gating hierarchical: " + std::to_string(k) + " experts cannot form groups = " +
                          std::to_string(groups) + " equal groups (k must be a multiple of groups)");
  outer_ = make_gating(json{{"family", outer}}, groups, d);
  for (std::size_t g = 0; g < groups; ++g) inner_.push_back(make_gating(json{{"family", inner}}, k / groups, d));
}

HierarchicalGating::HierarchicalGating(const HierarchicalGating& o)
    : Gating(o), groups_(o.groups_), outer_name_(o.outer_name_), inner_name_(o.inner_name_),
      outer_(o.outer_->clone()) {
  for (const auto& g : o.inner_) inner_.push_back(g->clone());
}

json HierarchicalGating::family_json() const {
  return json{{"family", "hierarchical"}, {"outer", outer_name_}, {"inner", inner_name_}, {"groups", groups_}};
}

std::string HierarchicalGating::description() const {
  return "two-level gate: outer " + outer_name_ + " over " + std::to_string(groups_) + " groups, inner " +
         inner_name_ + " within each group";
}

arma::mat HierarchicalGating::group_sums(const arma::mat& C) const {
  const std::size_t m = group_size();
  arma::mat S(groups_, C.n_cols);
  for (std::size_t g = 0; g < groups_; ++g) S.row(g) = arma::sum(C.rows(g * m, g * m + m - 1), 0);
  return S;
}

arma::mat HierarchicalGating::log_weights(const arma::mat& X) const {
  const std::size_t m = group_size();
  const arma::mat Lo = outer_->log_weights(X);
  arma::mat L(k_, X.n_cols);
  for (std::size_t g = 0; g < groups_; ++g) {
    arma::mat Li = inner_[g]->log_weights(X);
    Li.each_row() += Lo.row(g);
    L.rows(g * m, g * m + m - 1) = Li;
  }
  return L;
}

arma::vec HierarchicalGating::log_weights_vjp(const arma::mat& X, const arma::mat& C) const {
  const std::size_t m = group_size();
  arma::vec g = outer_->log_weights_vjp(X, group_sums(C));
  for (std::size_t q = 0; q < groups_; ++q)
    g = arma::join_cols(g, inner_[q]->log_weights_vjp(X, C.rows(q * m, q * m + m - 1)));
  return g;
}

std::size_t HierarchicalGating::n_params() const {
  std::size_t n = outer_->n_params();
  for (const auto& g : inner_) n += g->n_params();
  return n;
}

arma::vec HierarchicalGating::params() const {
  arma::vec t = outer_->params();
  for (const auto& g : inner_) t = arma::join_cols(t, g->params());
  return t;
}

void HierarchicalGating::set_params(const arma::vec& theta) {
  if (theta.n_elem != n_params())
    fail("HierarchicalGating::set_params", "parameter vector length", "must be " + std::to_string(n_params()),
         theta.n_elem);
  if (!theta.is_finite()) throw InvalidArgument("HierarchicalGating::set_params: parameters must be finite");
  std::size_t p = 0;
  auto take = [&](Gating& g) {
    const std::size_t n = g.n_params();
    g.set_params(n ? arma::vec(theta.subvec(p, p + n - 1)) : arma::vec());
    p += n;
  };
  take(*outer_);
  for (auto& g : inner_) take(*g);
}

std::vector<std::string> HierarchicalGating::param_names() const {
  std::vector<std::string> names;
  // Outer names are "expert<g>.x" for group g; inner "expert<j>.x" within the group.
  const auto on = outer_->param_names();
  for (const auto& s : on) {
    const std::string num = s.substr(6, s.find('.') - 6);
    names.push_back("group" + num + "." + strip_expert_prefix(s));
  }
  const std::size_t m = group_size();
  for (std::size_t g = 0; g < groups_; ++g)
    for (const auto& s : inner_[g]->param_names()) {
      const std::size_t j = std::stoul(s.substr(6, s.find('.') - 6));
      names.push_back("expert" + std::to_string(g * m + j) + "." + strip_expert_prefix(s));
    }
  return names;
}

GateMStepResult HierarchicalGating::m_step(const arma::mat& X, const arma::mat& R, const GateMStepOptions& opt) {
  GateMStepResult res;
  res.q_before = q_value(X, R, opt.ridge);
  const std::size_t m = group_size();
  res.steps += outer_->m_step(X, group_sums(R), opt).steps;
  for (std::size_t g = 0; g < groups_; ++g)
    res.steps += inner_[g]->m_step(X, R.rows(g * m, g * m + m - 1), opt).steps;
  res.q_after = q_value(X, R, opt.ridge);
  return res;
}

void HierarchicalGating::init_from_responsibilities(const arma::mat& X, const arma::mat& R) {
  const std::size_t m = group_size();
  outer_->init_from_responsibilities(X, group_sums(R));
  for (std::size_t g = 0; g < groups_; ++g)
    inner_[g]->init_from_responsibilities(X, R.rows(g * m, g * m + m - 1));
}

json HierarchicalGating::gate_json(std::size_t i) const {
  return inner_.at(group_of(i))->gate_json(i % group_size());
}

void HierarchicalGating::set_gate_json(std::size_t i, const json& gate, const std::string& where) {
  if (i >= k_) fail("HierarchicalGating::set_gate_json", "expert index", "must be < " + std::to_string(k_), i);
  inner_[group_of(i)]->set_gate_json(i % group_size(), gate, where);
}

json HierarchicalGating::extra_json() const {
  json gg = json::array();
  for (std::size_t g = 0; g < groups_; ++g) gg.push_back(outer_->gate_json(g));
  return json{{"groups", groups_}, {"outer", outer_->family_json()}, {"group_gates", gg}};
}

void HierarchicalGating::set_extra_json(const json& j, const std::string& where) {
  if (!j.is_object()) throw InvalidArgument(where + ": expected an object {\"groups\", \"outer\", \"group_gates\"}");
  for (const auto& [key, v] : j.items())
    if (key != "groups" && key != "outer" && key != "group_gates")
      throw InvalidArgument(where + ": unknown key \"" + key + "\" (expected groups, outer, group_gates)");
  if (j.contains("groups")) {
    const json& v = j["groups"];
    if (!v.is_number() || v.get<double>() != static_cast<double>(groups_))
      throw InvalidArgument(where + ".groups: must equal the gating's groups = " + std::to_string(groups_) +
                            "; got " + v.dump());
  }
  if (j.contains("outer") && j["outer"] != outer_->family_json())
    throw InvalidArgument(where + ".outer: must be " + outer_->family_json().dump() + " (the gating's outer level); got " +
                          j["outer"].dump());
  if (!j.contains("group_gates")) throw InvalidArgument(where + ": missing \"group_gates\"");
  const json& gg = j["group_gates"];
  if (!gg.is_array() || gg.size() != groups_)
    throw InvalidArgument(where + ".group_gates: expected an array of " + std::to_string(groups_) +
                          " group gates; got " + gg.dump());
  for (std::size_t g = 0; g < groups_; ++g)
    outer_->set_gate_json(g, gg[g], where + ".group_gates[" + std::to_string(g) + "]");
  outer_->normalise();
}

void HierarchicalGating::normalise() {
  outer_->normalise();
  for (auto& g : inner_) g->normalise();
}

void HierarchicalGating::permute(const std::vector<std::size_t>& order) {
  const std::string fn = "HierarchicalGating::permute";
  const std::size_t m = group_size();
  if (order.size() != k_) fail(fn, "order length", "must be " + std::to_string(k_), order.size());
  std::vector<std::size_t> gorder(groups_);
  std::vector<bool> seen(k_, false);
  for (std::size_t i = 0; i < k_; ++i) {
    if (order[i] >= k_ || seen[order[i]]) throw InvalidArgument(fn + ": order must be a permutation");
    seen[order[i]] = true;
    const std::size_t g = i / m, from = order[i] / m;
    if (i % m == 0) gorder[g] = from;
    else if (from != gorder[g])
      throw InvalidArgument(fn + ": the permutation must map groups to groups (new expert " + std::to_string(i) +
                            " comes from group " + std::to_string(from) + ", its group from " +
                            std::to_string(gorder[g]) + ")");
  }
  outer_->permute(gorder);
  std::vector<std::unique_ptr<Gating>> next;
  for (std::size_t g = 0; g < groups_; ++g) {
    auto ig = inner_[gorder[g]]->clone();
    std::vector<std::size_t> within(m);
    for (std::size_t j = 0; j < m; ++j) within[j] = order[g * m + j] % m;
    ig->permute(within);
    next.push_back(std::move(ig));
  }
  inner_ = std::move(next);
}

void HierarchicalGating::translate(double t0, const arma::vec& t1) {
  for (auto& g : inner_) g->translate(t0, t1);
}

double HierarchicalGating::atom_log_weight(std::size_t i) const {
  return inner_.at(group_of(i))->atom_log_weight(i % group_size());
}

arma::vec HierarchicalGating::atom_location(std::size_t i) const {
  return inner_.at(group_of(i))->atom_location(i % group_size());
}

MOERATE_REGISTER_GATING(
    "hierarchical",
    "two-level gate (hierarchical:outer=softmax|laplace,inner=softmax|laplace,groups=G); k = G * experts per group",
    [](const json& spec, std::size_t k, std::size_t d) -> std::unique_ptr<Gating> {
      std::string outer = "softmax";
      std::string inner = "softmax";
      std::size_t groups = 0;
      for (const auto& [key, v] : spec.items()) {
        if (key == "family") continue;
        if (key == "outer" || key == "inner") {
          if (!v.is_string())
            throw InvalidArgument("gating hierarchical: " + key + " must be softmax or laplace; got " + v.dump());
          (key == "outer" ? outer : inner) = v.get<std::string>();
        } else if (key == "groups") {
          if (!v.is_number() || !(v.get<double>() >= 1) || v.get<double>() != std::floor(v.get<double>()))
            throw InvalidArgument("gating hierarchical: groups must be a positive integer; got " + v.dump());
          groups = static_cast<std::size_t>(v.get<double>());
        } else {
          throw InvalidArgument("gating hierarchical: unknown option '" + key + "' (options: outer, inner, groups)");
        }
      }
      if (groups == 0) throw InvalidArgument("gating hierarchical: the option groups is required, e.g. groups=2");
      return std::make_unique<HierarchicalGating>(k, d, groups, outer, inner);
    });

}  // namespace moerate
