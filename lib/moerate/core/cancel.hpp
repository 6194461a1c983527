// moerate/core/cancel.hpp -- cooperative cancellation of long calls.
//
// A CancelHook is polled between the steps of long loops: every EM iteration,
// every L-BFGS iteration, every start of fit() and every task of run_sweep().
// When it returns true the call stops by throwing Cancelled; fit() and
// run_sweep() pass it through (a cancelled start or task is never recorded as
// failed). An empty hook, the default, is never called, and a hook that
// returns false changes nothing: results are the same with or without one.
// Loops run in parallel (OpenMP), so the hook may be called from several
// threads at once and must be thread-safe; once it has returned true it
// should keep returning true.
//
//   std::atomic<bool> stop{false};
//   FitOptions o;  o.em.cancel = [&] { return stop.load(); };
//   try { fit(X, y, o); } catch (const Cancelled&) { ... }
#pragma once

#include <functional>
#include <stdexcept>

namespace moerate {

using CancelHook = std::function<bool()>;

/// Thrown when a CancelHook asks a call to stop.
class Cancelled : public std::runtime_error {
public:
  Cancelled() : std::runtime_error("cancelled") {}
};

/// Throws Cancelled when the hook is set and returns true.
inline void throw_if_cancelled(const CancelHook& hook) {
  if (hook && hook()) throw Cancelled();
}

}  // namespace moerate
