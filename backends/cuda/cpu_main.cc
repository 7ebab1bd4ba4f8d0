// CPU test driver for generated CUDA: built by g++ together with one generated .cu (included
// through -DTOKR_KERNELS="path") and cuda_cpu.h. It reads a job file of lines:
//   buffer <id> <bytes> <input file | ->   allocate exactly <bytes> (ASan sees overruns); '-' = 0xFF poison
//   launch <kernel> <gx> <gy> <gz> <nsyms> <sym values...> <nargs> <buffer ids...>
//   write <id> <output file>
// and exits non-zero with a message on any error (cuda_cpu.h exits 86 on barrier/warp misuse).
#include TOKR_KERNELS

#include <fstream>
#include <map>
#include <sstream>

static void die(const std::string& m) {
  std::fprintf(stderr, "cpu_main: %s\n", m.c_str());
  std::exit(2);
}

int main(int argc, char** argv) {
  if (argc != 2) die("usage: cpu_main JOBFILE");
  std::ifstream job(argv[1]);
  if (!job) die(std::string("cannot open ") + argv[1]);
  std::map<int, std::pair<unsigned char*, size_t>> bufs;
  std::string line;
  int lineno = 0;
  while (std::getline(job, line)) {
    lineno++;
    std::istringstream in(line);
    std::string cmd;
    if (!(in >> cmd)) continue;
    const std::string at = std::string(argv[1]) + ":" + std::to_string(lineno) + ": ";
    if (cmd == "buffer") {
      int id;
      size_t bytes;
      std::string path;
      if (!(in >> id >> bytes >> path)) die(at + "bad buffer line");
      auto* p = static_cast<unsigned char*>(std::malloc(bytes ? bytes : 1));
      std::memset(p, 0xff, bytes);
      if (path != "-") {
        std::ifstream f(path, std::ios::binary);
        if (!f.read(reinterpret_cast<char*>(p), (std::streamsize)bytes)) die(at + "cannot read " + path);
      }
      bufs[id] = {p, bytes};
    } else if (cmd == "launch") {
      std::string name;
      unsigned grid[3];
      int ns, na;
      if (!(in >> name >> grid[0] >> grid[1] >> grid[2] >> ns)) die(at + "bad launch line");
      std::vector<int> syms(ns);
      for (int& s : syms) in >> s;
      in >> na;
      std::vector<void*> args(na);
      for (void*& a : args) {
        int id;
        if (!(in >> id) || !bufs.count(id)) die(at + "unknown buffer");
        a = bufs[id].first;
      }
      if (!in) die(at + "bad launch line");
      const tokr_kernel_info* k = tokr_kernel_table;
      while (k->name && name != k->name) k++;
      if (!k->name) die(at + "no kernel named " + name);
      if (k->num_params != na || k->num_symbols != ns)
        die(at + name + " takes " + std::to_string(k->num_params) + " buffers and " +
            std::to_string(k->num_symbols) + " symbols");
      k->launch(grid, args.data(), syms.data(), nullptr);
    } else if (cmd == "write") {
      int id;
      std::string path;
      if (!(in >> id >> path) || !bufs.count(id)) die(at + "bad write line");
      std::ofstream f(path, std::ios::binary);
      f.write(reinterpret_cast<char*>(bufs[id].first), (std::streamsize)bufs[id].second);
      if (!f) die(at + "cannot write " + path);
    } else {
      die(at + "unknown command " + cmd);
    }
  }
  for (auto& b : bufs) std::free(b.second.first);
  return 0;
}
