// libFuzzer harness for the model-file reader: JSON text -> GaussianMoE.
// A model that loads must serialise to finite JSON and load again.
#include <cstddef>
#include <cstdint>
#include <string>

#include "moerate/core/error.hpp"
#include "moerate/io/files.hpp"
#include "moerate/model/model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const moerate::json j = moerate::parse_json_text(text, "fuzz.json");
    const moerate::GaussianMoE m = moerate::GaussianMoE::from_json(j, "fuzz.json");
    const moerate::json out = m.to_json();
    moerate::check_json_finite(out, "fuzz.json");  // throws InvalidArgument: would be a bug here
    (void)moerate::GaussianMoE::from_json(out, "round-trip");
  } catch (const moerate::InputError&) {
  } catch (const moerate::InvalidArgument& e) {
    // Refusals at load are InputErrors; an InvalidArgument after a successful
    // load means the model could not be written or read back.
    const std::string w = e.what();
    if (w.rfind("fuzz.json: output", 0) == 0 || w.find("round-trip") != std::string::npos) __builtin_trap();
  }
  return 0;
}
