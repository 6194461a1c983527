// moerate/gating/hierarchical_gating.hpp -- two-level hierarchical gating (models.md section 3).
//
// k = k1 * k2 experts in k1 groups of k2; expert i (0-based) is expert j = i % k2
// of group g = i / k2:
//   log pi_i(x) = log pi^outer_g(x) + log pi^inner_{j | g}(x),
// each level a softmax or Laplace gate (outer=..., inner=...). References are
// fixed at each level: the last group of the outer gate and the last expert
// of every group (beta0 = 0, and beta1 = 0 for softmax levels).
// Flat parameters: [outer gate (its own flat order, names "group<g>.*"),
// then group 1's inner gate, ..., group k1's (names "expert<i>.*" with the
// global expert index)]. Q splits into an outer and k1 inner problems
// (Q = sum_g Q_g(outer, R summed over the group) + sum_g Q(inner_g, R rows of g)),
// so the M-step runs each level's own M-step (Newton for softmax levels).
// Model file: each expert's gate is its gate within its group; the group gates
// are in "gating_state": {"groups": k1, "outer": {"family": ...},
// "group_gates": [{"beta0", "beta1" or "w"} per group]} (absent: all zero).
// permute() accepts only permutations that map groups to groups.
// Atoms: expert i's inner gate (log weight beta0_{j|g}, location beta1 or w);
// the group level through n_groups(), group_of(), group_log_weight(), group_location().
//
//   auto g = make_gating(parse_family_spec("hierarchical:outer=softmax,inner=laplace,groups=2"), 4, 1);
#pragma once

#include "moerate/model/gating.hpp"

namespace moerate {

class HierarchicalGating : public Gating {
public:
  HierarchicalGating(std::size_t k, std::size_t d, std::size_t groups, const std::string& outer,
                     const std::string& inner);
  HierarchicalGating(const HierarchicalGating& o);
  HierarchicalGating& operator=(const HierarchicalGating& o) = delete;

  std::string family() const override { return "hierarchical"; }
  json family_json() const override;
  std::unique_ptr<Gating> clone() const override { return std::make_unique<HierarchicalGating>(*this); }
  std::string description() const override;

  arma::mat log_weights(const arma::mat& X) const override;
  arma::vec log_weights_vjp(const arma::mat& X, const arma::mat& C) const override;

  std::size_t n_params() const override;
  arma::vec params() const override;
  void set_params(const arma::vec& theta) override;
  std::vector<std::string> param_names() const override;

  GateMStepResult m_step(const arma::mat& X, const arma::mat& R, const GateMStepOptions& opt) override;
  void init_from_responsibilities(const arma::mat& X, const arma::mat& R) override;

  json gate_json(std::size_t i) const override;
  void set_gate_json(std::size_t i, const json& gate, const std::string& where) override;
  json extra_json() const override;
  void set_extra_json(const json& j, const std::string& where) override;
  void normalise() override;
  void permute(const std::vector<std::size_t>& order) override;
  /// True when the inner level is translation invariant (softmax): a common
  /// shift of every expert's inner gate changes nothing.
  bool translation_invariant() const override { return inner_[0]->translation_invariant(); }
  /// Shift every expert's inner gate (Laplace inner: t0 only).
  void translate(double t0, const arma::vec& t1) override;

  double atom_log_weight(std::size_t i) const override;
  arma::vec atom_location(std::size_t i) const override;
  std::string location_name() const override { return inner_[0]->location_name(); }

  // Group level (for nested Voronoi cells).
  std::size_t n_groups() const { return groups_; }
  std::size_t group_size() const { return k_ / groups_; }
  std::size_t group_of(std::size_t i) const { return i / group_size(); }
  double group_log_weight(std::size_t g) const { return outer_->atom_log_weight(g); }
  arma::vec group_location(std::size_t g) const { return outer_->atom_location(g); }
  std::string group_location_name() const { return outer_->location_name(); }
  const Gating& outer() const { return *outer_; }
  const Gating& inner(std::size_t g) const { return *inner_.at(g); }

private:
  arma::mat group_sums(const arma::mat& C) const;  // k1 x n
  std::size_t groups_;
  std::string outer_name_, inner_name_;
  std::unique_ptr<Gating> outer_;
  std::vector<std::unique_ptr<Gating>> inner_;
};

}  // namespace moerate
