// Work another family does during the gate's passes over the data.
//
// An EM step's M-step makes passes over X and R for the gate (its derivative
// pass, then the evaluation of the trial point) and for the experts (their
// normal equations, then their sums of squares). At large n each pass comes
// from memory, not cache, so the experts' two passes ride along with the
// gate's: the gate calls first_block(a, b) for every block of its first
// derivative pass, first_done() after it, trial_block(a, b) for every block of
// its first trial evaluation and trial_done() after that (estimators/em.cpp;
// docs/performance.md, round 11). Blocks may arrive in any order and from
// several threads at once: a companion keeps one accumulator per block and
// sums them in block order, so its numbers do not depend on the thread count.
// A gate family that does not call these leaves the work to EM, which then
// runs the companion's passes itself (run_remaining). A gate calls the first
// hooks only when stage() is 0 (a hierarchical gate runs several M-steps with
// the same options: the first one carries the passes), and the trial hooks
// only after its own first_done().
#pragma once

#include <cstddef>

namespace moerate {

class MStepCompanion {
public:
  virtual ~MStepCompanion() = default;
  virtual void first_block(std::size_t a, std::size_t b) = 0;
  virtual void first_done() = 0;
  virtual void trial_block(std::size_t a, std::size_t b) = 0;
  virtual void trial_done() = 0;
  /// Which hooks have run: 0 none, 1 the first pass, 2 both.
  int stage() const { return stage_; }

protected:
  int stage_ = 0;
};

}  // namespace moerate
