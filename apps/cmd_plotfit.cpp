// moerate plot-fit: a fitted model over its data (one covariate): the data,
// each expert's mean line h_j(x) and the predictive mean, and below them the
// gate weights pi_j(x).
#include <iostream>
#include <sstream>

#include "cli_common.hpp"
#include "moerate/data.hpp"
#include "moerate/model.hpp"
#include "moerate/plot.hpp"

void add_plotfit_command(CLI::App& app) {
  struct Opts {
    std::string model, data, out, title, y;
    std::vector<std::string> x;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("plot-fit", "Figure of a fitted model over its data: expert lines and gate (d = 1)");
  cmd->add_option("--model", o->model, "Model file (e.g. written by 'moerate fit')")->required();
  cmd->add_option("--data", o->data, "Data CSV")->required();
  cmd->add_option("--out", o->out, "Figure (.png, .svg or .pdf)")->required();
  cmd->add_option("--title", o->title, "Figure title");
  cmd->add_option("--y", o->y, "Response column (default y)");
  cmd->add_option("--x", o->x, "Covariate column")->delimiter(',');
  moerate::cli::set_example(cmd, "moerate plot-fit --model tone-fit.json --data data/tone.csv --out tone.png");
  cmd->callback([o]() {
    const auto m = moerate::GaussianMoE::load(o->model);
    moerate::CsvReadOptions ro;
    if (!o->y.empty()) ro.y_column = o->y;
    if (!o->x.empty()) ro.x_columns = o->x;
    const auto D = moerate::read_csv(o->data, ro);
    if (D.dim() != 1 || m.dim() != 1)
      throw moerate::cli::UsageError("plot-fit draws models with one covariate; the data have " +
                                     std::to_string(D.dim()) + " (choose one with --x)");
    const std::size_t k = m.n_experts(), G = 400;
    const double lo = D.X.min(), hi = D.X.max(), pad = 0.02 * (hi - lo);
    arma::mat grid(1, G);
    for (std::size_t i = 0; i < G; ++i) grid(0, i) = lo - pad + (hi - lo + 2 * pad) * double(i) / double(G - 1);
    const arma::mat H = m.expert_means(grid), P = arma::exp(m.log_weights(grid));
    const arma::rowvec f = m.regression_function(grid);
    const char* colours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"};
    auto script = [&](const std::string& tmp_out) {
      std::ostringstream s;
      const std::string ext = o->out.substr(o->out.find_last_of('.') + 1);
      if (ext == "svg") s << "set terminal svg size 1000,800 font 'Helvetica,16' background '#ffffff'\n";
      else if (ext == "pdf") s << "set terminal pdfcairo size 10in,8in font 'Helvetica,14'\n";
      else s << "set terminal pngcairo size 1000,800 font 'Helvetica,16' background '#ffffff'\n";
      s << "set output '" << tmp_out << "'\n";
      s << "$data << EOD\n";
      for (std::size_t i = 0; i < D.n_obs(); ++i) s << moerate::format_double(D.X(0, i)) << ' ' << moerate::format_double(D.y[i]) << '\n';
      s << "EOD\n$grid << EOD\n";
      for (std::size_t i = 0; i < G; ++i) {
        s << moerate::format_double(grid(0, i)) << ' ' << moerate::format_double(f[i]);
        for (std::size_t j = 0; j < k; ++j) s << ' ' << moerate::format_double(H(j, i)) << ' ' << moerate::format_double(P(j, i));
        s << '\n';
      }
      s << "EOD\n";
      s << "set multiplot layout 2,1 margins 0.1,0.97,0.09,0.92 spacing 0,0.08 title '"
        << (o->title.empty() ? o->data + ": " + std::to_string(k) + "-expert fit" : o->title) << "'\n";
      s << "set grid lc rgb '#dddddd'\nset key inside left top box opaque\nset border 3\nset tics nomirror\n";
      s << "set xrange [" << lo - pad << ":" << hi + pad << "]\n";
      s << "set ylabel '" << D.y_name << "'\n";
      s << "plot $data using 1:2 with points pt 7 ps 0.6 lc rgb '#888888' title 'data'";
      for (std::size_t j = 0; j < k; ++j)
        s << ", $grid using 1:" << 3 + 2 * j << " with lines lw 3 lc rgb '" << colours[j % 7] << "' title 'expert " << j + 1 << "'";
      s << ", $grid using 1:2 with lines lw 2 dt 2 lc rgb '#000000' title 'predictive mean'\n";
      s << "set xlabel '" << D.x_names[0] << "'\nset ylabel 'gate weight'\nset yrange [-0.02:1.02]\n";
      s << "plot ";
      for (std::size_t j = 0; j < k; ++j)
        s << (j ? ", " : "") << "$grid using 1:" << 4 + 2 * j << " with lines lw 3 lc rgb '" << colours[j % 7]
          << "' title 'pi_" << j + 1 << "(x)'";
      s << "\nunset multiplot\n";
      return s.str();
    };
    moerate::render_gnuplot(script, o->out);
    std::cout << "wrote " << o->out << "\n";
  });
}
