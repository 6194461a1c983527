// libFuzzer harness for the study-file reader: JSON text -> Study (inline
// truths only; a truth given as a path is looked up relative to fuzz/corpus).
#include <cstddef>
#include <cstdint>
#include <string>

#include "moerate/core/error.hpp"
#include "moerate/io/files.hpp"
#include "moerate/studies/sweep.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const moerate::json j = moerate::parse_json_text(text, "fuzz.json");
    const moerate::Study s = moerate::Study::from_json(j, "fuzz.json");
    // Validation promises a usable grid: sizes within the limits, tasks >= 1.
    if (s.n_grid.empty() || s.n_grid.front() < 2 || s.n_grid.back() > moerate::kMaxObservations) __builtin_trap();
    (void)moerate::results_header(s);
  } catch (const moerate::InputError&) {
  } catch (const moerate::InvalidArgument&) {
  }
  return 0;
}
