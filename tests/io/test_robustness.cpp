// Robustness of the readers and the output policy (issue 13): every bad input
// is an InputError or InvalidArgument naming the file, line and column or the
// key; outputs are only ever regular files that are not inputs.
#include <doctest/doctest.h>

#include "fixtures.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "moerate/core/error.hpp"
#include "moerate/io/csv.hpp"
#include "moerate/io/files.hpp"
#include "moerate/model/design.hpp"
#include "moerate/model/model.hpp"
#include "moerate/studies/sweep.hpp"

using namespace moerate;
namespace fs = std::filesystem;

namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

json study_with(const std::string& n_json, const std::string& extra = "") {
  return json::parse(std::string(R"({"truth": )") + fixtures::kExperimentA + R"(, "n": )" + n_json + extra +
                     R"(, "settings": [{"k": 2}]})");
}

}  // namespace

TEST_CASE("CSV reader: quotes, byte-order mark, tiny and huge numbers") {
  CHECK(message_of([] { read_csv_text("x1,y\n1,2\n3,\"4\n5,6\n", "q.csv"); }) ==
        "q.csv:3:3: unterminated quoted field: the quote opened here is never closed");
  const Dataset D = read_csv_text("\xEF\xBB\xBFx1,y\n1,2\n", "bom.csv");
  CHECK(D.x_names[0] == "x1");
  const Dataset T = read_csv_text("x1,y\n1e-400,2\n", "tiny.csv");
  CHECK(T.X(0, 0) == 0.0);
  CHECK(message_of([] { read_csv_text("x1,y\n1e400,2\n", "big.csv"); }).find("big.csv:2:1: value '1e400'") == 0);
  // A quote inside an unquoted field is text, not the start of a quoted field.
  CHECK(message_of([] { read_csv_text("x1,y\n1\"a,2\n", "mid.csv"); }).find("mid.csv:2:1: non-numeric") == 0);
}

TEST_CASE("JSON reader: number overflow names the file, line and column") {
  CHECK(message_of([] { parse_json_text("{\n  \"a\": 1e999}", "o.json"); }) ==
        "o.json:2:8: number 1e999 is out of the range of a double (at most about 1.8e308)");
  CHECK(message_of([] { parse_json_text("", "e.json"); }) == "e.json: file is empty");
}

TEST_CASE("model file whose gate normalisation overflows is refused at load") {
  json j = json::parse(fixtures::kExperimentA);
  j["experts"][0]["gate"]["beta0"] = 1e308;
  j["experts"][1]["gate"]["beta0"] = -1e308;
  const std::string m = message_of([&] { GaussianMoE::from_json(j, "big.json"); });
  CHECK(m.find("big.json: experts[0].gate.beta0: the gate parameters are too large") == 0);
}

TEST_CASE("output policy: directories, symbolic links, devices and inputs are refused") {
  const fs::path dir = fs::temp_directory_path() / ("moerate-outpol-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string in = (dir / "in.csv").string(), link = (dir / "link.csv").string();
  std::ofstream(in) << "x1,y\n1,2\n";
  fs::create_symlink(in, link);
  CHECK(message_of([&] { check_output_path(dir.string()); }).find("is a directory") != std::string::npos);
  CHECK(message_of([&] { check_output_path(link); }).find("is a symbolic link") != std::string::npos);
  CHECK(message_of([] { check_output_path("/dev/null"); }).find("not a regular file") != std::string::npos);
  CHECK(message_of([&] { check_output_path(in, {in}); }).find("is also an input") != std::string::npos);
  read_csv(in);  // noted as an input of this process
  CHECK(message_of([&] { write_file_atomic(in, "replaced"); }).find("is also an input") != std::string::npos);
  CHECK(read_csv(in).n_obs() == 1);
  CHECK(message_of([&] { write_file_atomic((dir / "new.csv").string(), "ok\n"); }).empty());
  CHECK(message_of([&] { write_json_file((dir / "nan.json").string(), json{{"a", NAN}}); }).find("output.a: value is not finite") !=
        std::string::npos);
  CHECK_FALSE(fs::exists(dir / "nan.json"));
  fs::remove_all(dir);
}

TEST_CASE("sizes and designs are checked before any allocation") {
  Rng rng(1);
  CHECK(message_of([&] { draw_design("uniform:0,1", 1, 2305843009213693953ULL, rng); }).find("would take at least") !=
        std::string::npos);
  CHECK(message_of([&] { draw_design("uniform:0,inf", 1, 10, rng); }).find("must be finite") != std::string::npos);
  CHECK(message_of([&] { draw_design("normal:0,1e308", 1, 1000, rng); }).find("overflow") != std::string::npos);
}

TEST_CASE("study files are validated completely before the first task") {
  CHECK(message_of([] { Study::from_json(study_with(R"({"min": 10, "max": -5})"), "s.json"); })
            .find("n.max: must be between 2 and 100000000; got -5") != std::string::npos);
  CHECK(message_of([] { Study::from_json(study_with(R"({"min": 100, "max": 10, "spacing": "linear"})"), "s.json"); })
            .find("n.min must be <= n.max") != std::string::npos);
  CHECK(message_of([] { Study::from_json(study_with(R"({"min": 10, "max": 20, "count": -2})"), "s.json"); })
            .find("n.count: must be between 1 and") != std::string::npos);
  CHECK(message_of([] { Study::from_json(study_with(R"({"values": [10]})", R"(, "rbar": {"x": 1})"), "s.json"); })
            .find("rbar: keys are orders") != std::string::npos);
  CHECK(message_of([] { Study::from_json(study_with(R"({"values": [10]})", R"(, "distance_mc": -1)"), "s.json"); })
            .find("distance_mc: must be between 1 and") != std::string::npos);
  CHECK(message_of([] { Study::from_json(study_with(R"({"values": [10]})", R"(, "design": "uniform:0,inf")"), "s.json"); })
            .find("study.design") != std::string::npos);
  CHECK(message_of([] { Study::from_json(study_with(R"({"values": [10]})"), "s.json"); }).empty());
}

TEST_CASE("merge refuses results files without the fixed columns (no out-of-bounds access)") {
  const fs::path dir = fs::temp_directory_path() / ("moerate-merge-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string in = (dir / "short.csv").string();
  std::ofstream(in) << "setting,n,rep\nk2,10,0\nk2,10,0\n";
  CHECK(message_of([&] { merge_results({in}, (dir / "out.csv").string()); }).find("not a sweep results file") !=
        std::string::npos);
  CHECK_FALSE(fs::exists(dir / "out.csv"));
  fs::remove_all(dir);
}
