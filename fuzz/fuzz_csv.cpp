// libFuzzer harness for the CSV reader (moerate::read_csv_text and
// read_csv_table_text). Any InputError/InvalidArgument is a clean refusal;
// anything else (a crash, a sanitizer report, another exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "moerate/core/error.hpp"
#include "moerate/io/csv.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    moerate::CsvReadOptions opt;
    opt.require_y = (size % 2) == 0;
    const moerate::Dataset D = moerate::read_csv_text(text, "fuzz.csv", opt);
    if (!D.X.is_finite()) __builtin_trap();  // the reader promises finite values
  } catch (const moerate::InputError&) {
  } catch (const moerate::InvalidArgument&) {
  }
  try {
    (void)moerate::read_csv_table_text(text, "fuzz.csv");
  } catch (const moerate::InputError&) {
  } catch (const moerate::InvalidArgument&) {
  }
  return 0;
}
